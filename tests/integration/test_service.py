"""The real service over HTTP: predictions, metadata, feedback, every bad input, metrics."""

from __future__ import annotations

import math
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.support.procs import bentoml_serve

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}


def post(url: str, body: Any) -> requests.Response:
    return requests.post(url, json=body, timeout=30)


def post_raw(
    url: str, data: bytes | str, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(url, data=data, headers=headers or JSON, timeout=30)


def locs(response: requests.Response) -> list[list[Any]]:
    return [d["loc"] for d in response.json()["detail"]]


def test_predict_returns_label_probabilities_id_and_version(
    api_url: str, median_record: dict[str, float], metadata: dict[str, Any]
) -> None:
    response = post(f"{api_url}/predict", {"records": [median_record, median_record]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "cepage-classifier", "version": metadata["version"]}
    classes = metadata["feature_schema"]["classes"]
    for prediction in body["predictions"]:
        assert prediction["label"] in classes
        assert set(prediction["probabilities"]) == set(classes)
        assert math.isclose(sum(prediction["probabilities"].values()), 1.0, abs_tol=1e-6)
        assert prediction["label"] == max(
            prediction["probabilities"], key=prediction["probabilities"].get
        )
        assert prediction["out_of_range"] == []
    ids = [p["id"] for p in body["predictions"]]
    assert len(set(ids)) == 2


def test_metadata_carries_the_schema_and_metrics(metadata: dict[str, Any]) -> None:
    assert metadata["name"] == "cepage-classifier"
    assert metadata["run_id"]
    assert metadata["metrics"]["f1_macro"] > 0.9
    schema = metadata["feature_schema"]
    assert schema["classes"] == ["Barbera", "Grignolino", "Nebbiolo"]
    names = [f["name"] for f in schema["features"]]
    assert "od280/od315_of_diluted_wines" in names
    for feature in schema["features"]:
        assert feature["min"] <= feature["median"] <= feature["max"]


def test_out_of_range_values_are_answered_and_flagged(
    api_url: str, median_record: dict[str, float], metadata: dict[str, Any]
) -> None:
    proline = next(f for f in metadata["feature_schema"]["features"] if f["name"] == "proline")
    record = {**median_record, "proline": proline["max"] * 10}
    response = post(f"{api_url}/predict", {"records": [record]})
    assert response.status_code == 200
    assert response.json()["predictions"][0]["out_of_range"] == ["proline"]


def test_feedback_on_a_real_prediction(api_url: str, median_record: dict[str, float]) -> None:
    body = {"records": [median_record, median_record]}
    prediction, another = post(f"{api_url}/predict", body).json()["predictions"]
    other = next(c for c in prediction["probabilities"] if c != prediction["label"])
    right = post(
        f"{api_url}/feedback", {"prediction_id": prediction["id"], "label": prediction["label"]}
    )
    assert right.status_code == 200, right.text
    assert right.json()["correct"] is True
    # One feedback per id: the wrong label goes with the second prediction.
    wrong = post(f"{api_url}/feedback", {"prediction_id": another["id"], "label": other})
    assert wrong.status_code == 200, wrong.text
    assert wrong.json() | {"correct": False} == wrong.json()
    assert wrong.json()["predicted"] == another["label"]


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        (
            {"prediction_id": "p1.made.up", "label": "Nebbiolo"},
            ["prediction_id"],
            "unknown_prediction",
        ),
        ({"prediction_id": "x"}, ["label"], "missing"),
        ({"prediction_id": "x", "label": "Nebbiolo", "extra": 1}, ["extra"], "extra_forbidden"),
    ],
)
def test_bad_feedback_gets_400_naming_the_field(
    api_url: str, body: dict[str, Any], field: list[str], kind: str
) -> None:
    response = post(f"{api_url}/feedback", body)
    assert response.status_code == 400
    assert [d["loc"] for d in response.json()["detail"]] == [field]
    assert response.json()["detail"][0]["type"] == kind


def test_feedback_with_an_unknown_label_gets_400(
    api_url: str, median_record: dict[str, float]
) -> None:
    prediction = post(f"{api_url}/predict", {"records": [median_record]}).json()["predictions"][0]
    response = post(f"{api_url}/feedback", {"prediction_id": prediction["id"], "label": "merlot"})
    assert response.status_code == 400
    assert locs(response) == [["label"]]
    assert "merlot" in response.json()["detail"][0]["msg"]


def bad_predict_cases(record: dict[str, float]) -> list[tuple[str, Any, list[Any], str]]:
    name = next(iter(record))
    without = {k: v for k, v in record.items() if k != name}
    return [
        ("missing field", {"records": [without]}, ["records", 0, name], "missing"),
        (
            "extra field",
            {"records": [{**record, "colour": 1.0}]},
            ["records", 0, "colour"],
            "extra_forbidden",
        ),
        ("wrong type", {"records": [{**record, name: "high"}]}, ["records", 0, name], "float_type"),
        ("boolean", {"records": [{**record, name: True}]}, ["records", 0, name], "float_type"),
        # The wine data has no blanks, so no feature may be null.
        ("null", {"records": [{**record, name: None}]}, ["records", 0, name], "missing_value"),
        ("a list", {"records": [{**record, name: [1.0]}]}, ["records", 0, name], "float_type"),
        (
            "huge integer",
            {"records": [{**record, name: 10**400}]},
            ["records", 0, name],
            "finite_number",
        ),
        ("empty records", {"records": []}, ["records"], "too_short"),
        ("records not a list", {"records": {"a": 1}}, ["records"], "list_type"),
        ("no records key", {"rows": [record]}, ["records"], "missing"),
        ("top-level extra", {"records": [record], "debug": True}, ["debug"], "extra_forbidden"),
        ("too many records", {"records": [record] * 1001}, ["records"], "too_long"),
    ]


def test_every_bad_predict_body_gets_400_naming_the_field(
    api_url: str, median_record: dict[str, float]
) -> None:
    for label, body, loc, kind in bad_predict_cases(median_record):
        response = post(f"{api_url}/predict", body)
        assert response.status_code == 400, f"{label}: {response.status_code} {response.text}"
        details = response.json()["detail"]
        assert [loc, kind] in [[d["loc"], d["type"]] for d in details], f"{label}: {details}"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ('{"records": [{"alcohol": NaN}]}', "finite_number"),
        ('{"records": [{"alcohol": Infinity}]}', "finite_number"),
        ('{"records": [{"alcohol": -Infinity}]}', "finite_number"),
        ("{not json", "json_invalid"),
        ("[1, 2]", "model_type"),
        ('"records"', "model_type"),
        ("", "missing"),
    ],
)
def test_malformed_json_nan_and_non_objects_get_400(api_url: str, raw: str, kind: str) -> None:
    response = post_raw(f"{api_url}/predict", raw)
    assert response.status_code == 400, response.text
    assert kind in [d["type"] for d in response.json()["detail"]]


def test_non_json_and_oversized_bodies(api_url: str) -> None:
    form = requests.post(f"{api_url}/predict", data={"records": "1"}, timeout=10)
    assert form.status_code == 415
    huge = post_raw(f"{api_url}/predict", b" " * (3 * 1024 * 1024))
    assert huge.status_code == 413
    assert "CEPAGE_MAX_BODY_BYTES" in huge.json()["error"]


def metric_lines(url: str) -> list[str]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def sample(lines: list[str], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in lines:
        metric, _, value = line.rpartition(" ")
        if metric.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in metric for k, v in labels.items()):
            total += float(value)
    return total


def exercise(
    url: str, record: dict[str, float], count: int, concurrency: int = 1
) -> list[dict[str, Any]]:
    """``count`` single-record predictions (``concurrency`` at a time), each with its feedback."""

    def one(_: int) -> dict[str, Any]:
        response = post(f"{url}/predict", {"records": [record]})
        assert response.status_code == 200
        prediction: dict[str, Any] = response.json()["predictions"][0]
        feedback = {"prediction_id": prediction["id"], "label": prediction["label"]}
        assert post(f"{url}/feedback", feedback).status_code == 200
        return prediction

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(count)))


def served_pids(url: str) -> set[str]:
    """The worker processes that have answered a request so far."""
    lines = metric_lines(url)
    return {ln.split('pid="')[1].split('"')[0] for ln in lines if 'pid="' in ln}


def check_metrics(url: str, predictions: list[dict[str, Any]]) -> None:
    count = len(predictions)
    label = predictions[0]["label"]
    assert {p["label"] for p in predictions} == {label}
    lines = metric_lines(url)
    buckets = [
        ln for ln in lines if ln.startswith("bentoml_service_request_duration_seconds_bucket")
    ]
    assert any('le="0.001"' in ln and 'endpoint="/predict"' in ln for ln in buckets)
    assert (
        sample(lines, "bentoml_service_request_duration_seconds_count", endpoint="/predict")
        >= count
    )
    assert sample(lines, "cepage_predictions_total", label=label) == count
    assert sample(lines, "cepage_prediction_confidence_count") == count
    assert sample(lines, "cepage_feedback_total", outcome="correct") == count
    assert sample(lines, "cepage_model_info") >= 1


def test_metrics_have_dense_latency_buckets_and_the_custom_metrics(
    trained_home: Path, median_record: dict[str, float]
) -> None:
    # A fresh server, so counts start at zero.
    with bentoml_serve(trained_home) as url:
        check_metrics(url, exercise(url, median_record, 12))


def test_metrics_add_up_across_two_workers(
    trained_home: Path, median_record: dict[str, float]
) -> None:
    """bentoml#5056: custom histograms went missing with several workers; ours must not."""
    with bentoml_serve(trained_home, workers=2) as url:
        predictions: list[dict[str, Any]] = []
        for _ in range(20):  # concurrent clients until the kernel has handed both workers some
            predictions += exercise(url, median_record, 16, concurrency=8)
            if len(served_pids(url)) == 2:
                break
        assert len(served_pids(url)) == 2, "only one worker ever answered"
        check_metrics(url, predictions)


def accepted_by_worker(port: int) -> dict[int, int]:
    """pid -> connections it has accepted on ``port`` (ESTABLISHED, the server's end)."""
    counts: dict[int, int] = {}
    for process in psutil.process_iter():
        try:
            connections = process.net_connections(kind="tcp")
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        own = [
            c for c in connections
            if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
        ]  # fmt: skip
        if own:
            counts[process.pid] = len(own)
    return counts


def test_connections_opened_together_spread_over_both_workers(trained_home: Path) -> None:
    """One SO_REUSEPORT socket per worker (bento/listeners.py): 32 kept-alive connections opened
    at once used to land all on the worker that woke first (32 and 0)."""
    with bentoml_serve(trained_home, workers=2) as url:
        port = int(url.rsplit(":", 1)[1])
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
        try:
            for client in clients:
                client.sendall(b"GET /readyz HTTP/1.1\r\nHost: cepage\r\n\r\n")
            for client in clients:
                assert client.recv(64).startswith(b"HTTP/1.1 200"), "not answered"
            counts = accepted_by_worker(port)
        finally:
            for client in clients:
                client.close()
    assert sum(counts.values()) == 32, counts
    # A fair split is 16 each; below 4 of 32 happens once in ~10^5 runs of a coin toss.
    assert len(counts) == 2 and min(counts.values()) >= 4, counts


def test_tracing_is_off_unless_asked(
    trained_home: Path, api_url: str, median_record: dict[str, float]
) -> None:
    """BentoML's tracing middleware made spans nobody exported and stalled the worker (1-client
    p99 70 ms against 1 ms, docs/performance.md); off, it sends no request id either."""
    body = {"records": [median_record]}
    assert "x-bentoml-request-id" not in post(f"{api_url}/predict", body).headers
    with bentoml_serve(trained_home, extra_env={"CEPAGE_TRACING": "on"}) as traced:
        assert "x-bentoml-request-id" in post(f"{traced}/predict", body).headers


def test_a_replayed_feedback_gets_400_and_is_not_counted(
    api_url: str, median_record: dict[str, float]
) -> None:
    """A prediction id is good for one feedback: replaying it (same label or another) cannot
    inflate or hide an accuracy drop in cepage_feedback_total."""
    prediction = post(f"{api_url}/predict", {"records": [median_record]}).json()["predictions"][0]
    other = next(c for c in prediction["probabilities"] if c != prediction["label"])
    before = sample(metric_lines(api_url), "cepage_feedback_total")
    first = post(
        f"{api_url}/feedback", {"prediction_id": prediction["id"], "label": prediction["label"]}
    )
    assert first.status_code == 200, first.text
    for label in (prediction["label"], other, prediction["label"]):
        replay = post(f"{api_url}/feedback", {"prediction_id": prediction["id"], "label": label})
        assert replay.status_code == 400, replay.text
        [detail] = replay.json()["detail"]
        assert (detail["type"], detail["loc"]) == ("duplicate_feedback", ["prediction_id"])
        assert "already been given feedback" in detail["msg"]
    assert sample(metric_lines(api_url), "cepage_feedback_total") == before + 1
