"""The loop closed, with real processes: serve -> predictions -> feedback -> the production log ->
``cepage dataset`` -> ``cepage retrain --from-production`` -> the new model served; and a
candidate that does worse on the recent production rows is rejected, the champion unchanged.

The production traffic is the wine data itself, with its true labels as feedback, so a model
trained on it is as good as the champion; a deliberately crippled one is not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests

from stack.home import cepage, prepare_home, stack_env
from tests.support.procs import bentoml_serve
from train.data import load_wine_frame

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREDICTED = 150  # records scored
LABELLED = 120  # of which get their true label back
HELD_OUT = 36  # 30 % of the labelled rows, newest first, kept for the gate


@pytest.fixture(scope="module")
def loop_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_home(tmp_path_factory.mktemp("closed-loop"))


def serve_env(home: Path) -> dict[str, str]:
    return {
        "CEPAGE_PREDICTION_LOG": str(home / "production"),
        "CEPAGE_PREDICTION_LOG_FLUSH_SECONDS": "0.5",
    }


@pytest.fixture(scope="module")
def traffic(loop_home: Path) -> dict[str, Any]:
    """Production traffic against a real server, which is then stopped (SIGTERM: it writes what
    it holds)."""
    frame = load_wine_frame().sample(PREDICTED, random_state=7).reset_index(drop=True)
    labels = frame.pop("cultivar").tolist()
    records = frame.to_dict(orient="records")
    with bentoml_serve(loop_home, extra_env=serve_env(loop_home)) as url:
        ids: list[str] = []
        for start in range(0, PREDICTED, 25):
            answer = requests.post(
                f"{url}/predict", json={"records": records[start : start + 25]}, timeout=30
            )
            answer.raise_for_status()
            ids += [p["id"] for p in answer.json()["predictions"]]
        for prediction_id, label in list(zip(ids, labels, strict=True))[:LABELLED]:
            answer = requests.post(
                f"{url}/feedback", json={"prediction_id": prediction_id, "label": label}, timeout=30
            )
            answer.raise_for_status()
    return {"ids": ids, "labels": labels}


def run(home: Path, *args: str, **env: str) -> Any:
    return cepage(*args, env=stack_env(home, **env), timeout=600)


def test_production_summary_per_version(loop_home: Path, traffic: dict[str, Any]) -> None:
    done = run(loop_home, "production")
    assert done.returncode == 0, done.stdout + done.stderr
    header, row = done.stdout.strip().splitlines()[:2]
    assert header.split() == ["version", "predictions", "labelled", "share", "accuracy"]
    version, predictions, labelled, share, accuracy = row.split()
    assert (version, predictions, labelled, share) == ("1", str(PREDICTED), str(LABELLED), "80.0%")
    assert 0.85 <= float(accuracy) <= 1.0


def test_dataset_joins_the_labelled_production_rows(
    loop_home: Path, traffic: dict[str, Any]
) -> None:
    done = run(loop_home, "dataset")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{LABELLED - HELD_OUT} labelled production rows" in done.stdout
    assert f"{HELD_OUT} newest production rows held out" in done.stdout
    snapshot = Path(done.stdout.strip().splitlines()[-1].removeprefix("Written to "))
    manifest = json.loads((snapshot.parent / "manifest.json").read_text())
    assert manifest["original_rows"] == 178  # the champion's own stored training data
    assert manifest["original_source"].endswith("/data/training.csv")
    lines = snapshot.read_text().splitlines()
    assert len(lines) == 1 + 178 + LABELLED - HELD_OUT
    holdout = (snapshot.parent / "production-holdout.csv").read_text().splitlines()
    assert len(holdout) == 1 + HELD_OUT
    # The held-out rows are the newest feedback, with their ids: they match the traffic.
    held_ids = {line.split(",")[-2] for line in holdout[1:]}
    assert held_ids <= set(traffic["ids"][:LABELLED])
    # Content-addressed: the same inputs give the same snapshot.
    again = run(loop_home, "dataset")
    assert again.stdout.strip().splitlines()[-1] == done.stdout.strip().splitlines()[-1]


def test_retrain_from_production_promotes_and_serves_the_new_model(
    loop_home: Path, traffic: dict[str, Any]
) -> None:
    done = run(loop_home, "retrain", "--from-production", "--no-build", "--tolerance", "0.05")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"on {HELD_OUT} recent labelled production rows" in done.stdout
    mlflow.set_tracking_uri(f"sqlite:///{loop_home / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("cepage-classifier", "champion")
    assert str(champion.version) == "2"
    assert champion.tags["gate.production_rows"] == str(HELD_OUT)
    assert float(champion.tags["gate.production_candidate_f1"]) >= 0.85
    run_ = client.get_run(str(champion.run_id))
    assert run_.data.tags["cepage.dataset.production_rows"] == str(LABELLED - HELD_OUT)
    assert run_.data.tags["cepage.dataset.original_rows"] == "178"
    # Reproducible from MLflow alone: every row it trained on, and the original rows.
    stored = mlflow.artifacts.load_text(f"runs:/{champion.run_id}/data/training.csv")
    assert len(stored.splitlines()) == 1 + 178 + LABELLED - HELD_OUT
    original = mlflow.artifacts.load_text(f"runs:/{champion.run_id}/dataset/original.csv")
    assert len(original.splitlines()) == 1 + 178
    assert run_.inputs is not None
    inputs = [i.dataset.name for i in run_.inputs.dataset_inputs]
    assert any(name.startswith("production-") for name in inputs)
    summary = run(loop_home, "registry", "gate-summary").stdout
    assert f"macro-F1 ({HELD_OUT} recent production rows)" in summary
    with bentoml_serve(loop_home) as url:
        assert requests.get(f"{url}/metadata", timeout=10).json()["version"] == "2"


def test_a_candidate_worse_on_production_rows_is_rejected(
    loop_home: Path, traffic: dict[str, Any]
) -> None:
    """Tolerance 1 and floor 0 let anything through on the usual held-out rows: only the
    production check stands between this crippled model and @champion."""
    before = run(loop_home, "registry", "champion")
    done = run(
        loop_home, "retrain", "--from-production", "--no-build", "--tolerance", "1", "--floor",
        "0", "--param", "C=0.00001", CEPAGE_GATE_PRODUCTION_TOLERANCE="0",
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "recent labelled production rows" in done.stdout
    assert run(loop_home, "registry", "champion").stdout == before.stdout
    # Built on the champion that already holds production rows: each row is counted once.
    assert f"{LABELLED - HELD_OUT} labelled production rows" in done.stdout
    assert "178 original rows" in done.stdout
