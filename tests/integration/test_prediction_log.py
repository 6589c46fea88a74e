"""The production log on a real `bentoml serve`: predictions and feedback answered over HTTP are
in the Parquet files after the service is stopped with SIGTERM (what it held is written by its
shutdown hook), row for row; categories and blanks of mixed data are stored typed, an excluded
feature is not; and the same code writes to a real S3-compatible server (moto, started here)."""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import requests

from contracts import production_log as names
from stack.processes import answers, process_tree, running, start, stop_group, wait_until
from tests.support.mixed_data import CALLS, CHARGES, PAPERLESS, PLAN, REGION, TENURE
from tests.support.procs import (
    BIN,
    bentoml_serve,
    free_port,
    private_bentoml_home,
    stack_env,
)
from tests.support.s3 import s3_server

pytestmark = pytest.mark.integration

# Long enough that nothing is written while the test runs, unless a batch fills up.
HELD = {"CEPAGE_PREDICTION_LOG_FLUSH_SECONDS": "600", "CEPAGE_PREDICTION_LOG_BATCH_ROWS": "1000"}
KEY = secrets.token_hex(16)
LOG_ROWS = "cepage_prediction_log_rows_total"
S3_BUCKET = "cepage-logs"
# moto's made-up credentials (it takes any).
S3_ACCESS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret
}


def predict(url: str, records: list[dict[str, Any]], key: str | None = None) -> list[Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = requests.post(
        f"{url}/predict", json={"records": records}, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    predictions: list[Any] = response.json()["predictions"]
    return predictions


def feedback(url: str, prediction_id: str, label: str, key: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = requests.post(
        f"{url}/feedback",
        json={"prediction_id": prediction_id, "label": label},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text


def metric(url: str, name: str, **labels: str) -> float:
    """The sum over the service's series of ``name`` with ``labels`` (None when absent)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and all(w in line for w in wanted)
    ]
    assert values, f"no series {name}{labels} on /metrics"
    return sum(values)


def read(filesystem: Any, root: str, dataset: str) -> list[dict[str, Any]]:
    """Every row of one dataset, partition values as strings (contracts/production_log.py)."""
    keys = names.PARTITION_KEYS[dataset]
    partitioning = ds.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive")
    table = ds.dataset(
        f"{root}/{dataset}", filesystem=filesystem, format="parquet", partitioning=partitioning
    ).to_table()
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def check_rows(
    predictions: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    version: str,
    feedback_rows: list[dict[str, Any]],
    labelled: dict[str, str],
    who: str,
) -> None:
    """The log holds exactly the answered predictions and the accepted feedback."""
    logged = {row["prediction_id"]: row for row in predictions}
    assert len(logged) == len(predictions) == len(answers)
    for answer in answers:
        row = logged[answer["id"]]
        assert row["label"] == answer["label"]
        assert dict(row["probabilities"]) == pytest.approx(answer["probabilities"])
        assert row["out_of_range"] == answer["out_of_range"]
        assert row["model_version"] == version
        assert row["model_name"] == "cepage-classifier"
    joined = {row["prediction_id"]: row for row in feedback_rows}
    assert set(joined) == set(labelled)
    for prediction_id, label in labelled.items():
        row = joined[prediction_id]
        assert row["label"] == label
        assert row["predicted"] == logged[prediction_id]["label"]
        assert row["model_version"] == version
        assert row["who"] == who
        assert row["time"] >= logged[prediction_id]["time"]


def test_predictions_and_feedback_are_written_when_the_service_stops(
    trained_home: Path, median_record: dict[str, float], tmp_path: Path
) -> None:
    root = tmp_path / "production"
    env = {"CEPAGE_PREDICTION_LOG": str(root), **HELD}
    with bentoml_serve(trained_home, workers=2, extra_env=env) as url:
        records = [dict(median_record, alcohol=11.0 + i / 10) for i in range(20)]
        answers = predict(url, records)
        for i in range(5):
            answers += predict(url, [dict(median_record, proline=500.0 + 100 * i)])
        answers += predict(url, [dict(median_record, alcohol=99.0)])  # out of range
        labelled = {answer["id"]: "Barbera" for answer in answers[::4]}
        for prediction_id, label in labelled.items():
            feedback(url, prediction_id, label)
        version = requests.get(f"{url}/metadata", timeout=10).json()["version"]
        # Held in memory: a batch is 1000 rows or 600 s away.
        assert metric(url, LOG_ROWS, log="predictions") == 0
        assert not list(root.rglob("*.parquet"))
    # `bentoml_serve` stopped it with SIGTERM: the shutdown hook wrote what each worker held.
    local = pafs.LocalFileSystem()
    predictions = read(local, str(root), names.PREDICTIONS)
    feedback_rows = read(local, str(root), names.FEEDBACK)
    check_rows(predictions, answers, version, feedback_rows, labelled, "anonymous")
    assert {row["date"] for row in predictions} == {
        row["time"].date().isoformat() for row in predictions
    }
    assert all(path.name.startswith("part-") for path in root.rglob("*") if path.is_file())
    by_id = {row["prediction_id"]: row for row in predictions}
    first = by_id[answers[0]["id"]]["inputs"]
    assert first == pytest.approx({k: float(v) for k, v in records[0].items()})
    assert by_id[answers[-1]["id"]]["out_of_range"] == ["alcohol"]


def test_mixed_data_keeps_categories_and_blanks_and_leaves_out_excluded(
    mixed_home: Path, tmp_path: Path
) -> None:
    root = tmp_path / "production"
    env = {
        "CEPAGE_PREDICTION_LOG": str(root),
        "CEPAGE_PREDICTION_LOG_EXCLUDE": f"{REGION}, not a feature",
        "CEPAGE_PREDICTION_LOG_FLUSH_SECONDS": "600",
        "CEPAGE_PREDICTION_LOG_BATCH_ROWS": "3",  # a full batch is written at once
        "CEPAGE_API_KEY": KEY,
    }
    base = {CHARGES: 70.5, CALLS: 3, PAPERLESS: True, PLAN: "basic", REGION: "north", TENURE: 12}
    records = [
        base,
        {**base, CHARGES: None, PAPERLESS: None, REGION: None},  # blanks as null
        {k: v for k, v in base.items() if k not in (CHARGES, REGION)},  # blanks as absent keys
        {**base, PLAN: "platinum", PAPERLESS: False},  # an unseen category
    ]
    with bentoml_serve(mixed_home, extra_env=env) as url:
        answers = predict(url, records, key=KEY)
        feedback(url, answers[1]["id"], "left", key=KEY)
        # Three rows make a batch: the four are written while the service runs (in files of
        # three rows at most), the one feedback waits for the shutdown.
        assert wait_until(
            lambda: metric(url, LOG_ROWS, log="predictions", outcome="written") == 4, timeout=30
        )
        assert metric(url, LOG_ROWS, log="feedback", outcome="written") == 0
        version = requests.get(f"{url}/metadata", headers={"X-API-Key": KEY}, timeout=10).json()[
            "version"
        ]
    local = pafs.LocalFileSystem()
    predictions = read(local, str(root), names.PREDICTIONS)
    feedback_rows = read(local, str(root), names.FEEDBACK)
    who = "key:" + hashlib.sha256(KEY.encode()).hexdigest()[:12]
    check_rows(predictions, answers, version, feedback_rows, {answers[1]["id"]: "left"}, who)
    by_id = {row["prediction_id"]: row["inputs"] for row in predictions}
    stored = [by_id[answer["id"]] for answer in answers]
    assert stored == [
        {CHARGES: 70.5, CALLS: 3.0, PAPERLESS: True, PLAN: "basic", TENURE: 12.0},
        {CHARGES: None, CALLS: 3.0, PAPERLESS: None, PLAN: "basic", TENURE: 12.0},
        {CHARGES: None, CALLS: 3.0, PAPERLESS: True, PLAN: "basic", TENURE: 12.0},
        {CHARGES: 70.5, CALLS: 3.0, PAPERLESS: False, PLAN: "platinum", TENURE: 12.0},
    ]
    files = list(root.rglob("*.parquet"))
    assert max(pq.read_metadata(p).num_rows for p in files) <= 3
    assert all(b"north" not in p.read_bytes() for p in files)  # the excluded feature's value
    assert all(KEY.encode() not in p.read_bytes() for p in files)


@contextmanager
def serve_with_process(
    home: Path, tmp_path: Path, extra_env: dict[str, str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As `bentoml_serve`, but yields the server's process too (to find its worker)."""
    port = free_port()
    env = stack_env(home, CEPAGE_WORKERS="1", **extra_env)
    env["BENTOML_HOME"] = str(private_bentoml_home(home, port))
    url = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "bentoml"), "serve", "bento.service:Classifier"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    with running(argv, log=tmp_path / "serve.log", ready_url=f"{url}/readyz", env=env) as proc:
        yield url, proc


def worker_pids(proc: subprocess.Popen[bytes]) -> set[int]:
    """The live BentoML workers of a `bentoml serve`."""
    import psutil

    pids = set()
    for child in process_tree(proc.pid)[1:]:
        try:
            if "_bentoml_impl.worker.service" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.Error:  # gone, or a zombie not reaped yet
            continue
    return pids


def test_a_killed_worker_loses_only_what_it_held_and_the_loss_shows(
    trained_home: Path, median_record: dict[str, float], tmp_path: Path
) -> None:
    root = tmp_path / "production"
    env = {
        "CEPAGE_PREDICTION_LOG": str(root),
        "CEPAGE_PREDICTION_LOG_FLUSH_SECONDS": "600",
        "CEPAGE_PREDICTION_LOG_BATCH_ROWS": "3",
    }
    with serve_with_process(trained_home, tmp_path, env) as (url, proc):
        (worker,) = worker_pids(proc)
        lost = predict(url, [median_record, median_record])  # under a batch: held in memory
        os.kill(worker, signal.SIGKILL)
        # BentoML starts a new worker; its rows are written as soon as a batch is full.
        assert wait_until(lambda: worker_pids(proc) - {worker} != set(), timeout=60)
        assert wait_until(lambda: answers(f"{url}/readyz"), timeout=60)
        kept = predict(url, [median_record] * 3)
        assert wait_until(lambda: metric(url, LOG_ROWS, outcome="written") == 3, timeout=30)
        predicted = metric(url, "cepage_predictions_total")
        logged = metric(url, LOG_ROWS, log="predictions")
        assert (predicted, logged) == (5, 3)  # the 2 rows the killed worker held: visible
    written = read(pafs.LocalFileSystem(), str(root), names.PREDICTIONS)
    assert sorted(r["prediction_id"] for r in written) == sorted(a["id"] for a in kept)
    assert not {a["id"] for a in lost} & {r["prediction_id"] for r in written}


def test_a_bad_log_setting_stops_the_service_before_it_serves(
    trained_home: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = stack_env(
        trained_home, CEPAGE_PREDICTION_LOG=str(tmp_path), CEPAGE_PREDICTION_LOG_SAMPLE="2"
    )
    env["BENTOML_HOME"] = str(private_bentoml_home(trained_home, port))
    argv = [str(BIN / "bentoml"), "serve", "bento.service:Classifier", "--port", str(port)]
    log = tmp_path / "serve.log"
    proc = start([*argv, "--host", "127.0.0.1"], log=log, env=env)
    try:
        exited = wait_until(lambda: proc.poll() is not None, timeout=120, interval=0.5)
    finally:
        stop_group(proc)
    output = log.read_text()
    assert exited and proc.returncode != 0, output[-3000:]
    assert "CEPAGE_PREDICTION_LOG_SAMPLE must be <= 1" in output


# --- S3 ---


def test_the_log_is_written_to_s3(
    trained_home: Path, median_record: dict[str, float], tmp_path: Path, monkeypatch: Any
) -> None:
    for name, value in S3_ACCESS.items():
        monkeypatch.setenv(name, value)
    with s3_server(tmp_path) as endpoint:
        filesystem = pafs.S3FileSystem(
            endpoint_override=endpoint.removeprefix("http://"),
            scheme="http",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        filesystem.create_dir(S3_BUCKET)
        env = {
            "CEPAGE_PREDICTION_LOG": f"s3://{S3_BUCKET}/prod",
            "CEPAGE_PREDICTION_LOG_S3_ENDPOINT": endpoint,
            "CEPAGE_PREDICTION_LOG_S3_REGION": "us-east-1",
            **S3_ACCESS,
            **HELD,
        }
        with bentoml_serve(trained_home, extra_env=env) as url:
            answers = predict(url, [median_record] * 4)
            answers += predict(url, [dict(median_record, proline=900.0)])
            labelled = {answers[0]["id"]: "Grignolino", answers[4]["id"]: "Nebbiolo"}
            for prediction_id, label in labelled.items():
                feedback(url, prediction_id, label)
            version = requests.get(f"{url}/metadata", timeout=10).json()["version"]
        predictions = read(filesystem, f"{S3_BUCKET}/prod", names.PREDICTIONS)
        feedback_rows = read(filesystem, f"{S3_BUCKET}/prod", names.FEEDBACK)
        check_rows(predictions, answers, version, feedback_rows, labelled, "anonymous")
        listed = filesystem.get_file_info(pafs.FileSelector(S3_BUCKET, recursive=True))
        keys = [info.path for info in listed if info.type == pafs.FileType.File]
        assert keys and all(
            key.startswith(f"{S3_BUCKET}/prod/predictions/date=")
            or key.startswith(f"{S3_BUCKET}/prod/feedback/date=")
            for key in keys
        ), keys
