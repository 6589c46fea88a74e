"""The shadow challenger (bento/shadow.py) with stub estimators and a real production log written
to a directory and read back by the promotion rule (train/shadow.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import prometheus_client as prom
import pytest

from bento.predictor import ModelBundle, ModelInfo, Predictor
from bento.production_log import FeedbackRow, ProductionLog
from bento.settings import ProductionLogSettings
from bento.shadow import BATCH_SECONDS, Shadow, ShadowJob, create_shadow_metrics
from contracts.production_log import parse_location
from train.shadow import ShadowRecord, decide, read_record

SCHEMA = {"classes": ["a", "b"], "features": [{"name": "x", "min": 0.0, "max": 10.0}]}


class Threshold:
    """Class 'b' when x > ``cut``."""

    classes_ = np.array(["a", "b"])

    def __init__(self, cut: float, gate: threading.Event | None = None) -> None:
        self.cut = cut
        self.gate = gate

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(10)
        p_b = (matrix[:, 0] > self.cut).astype(float) * 0.8 + 0.1
        return np.column_stack([1 - p_b, p_b])


class Counting:
    """Counts the model calls of the estimator it wraps."""

    def __init__(self, inner: Threshold) -> None:
        self.inner = inner
        self.classes_ = inner.classes_
        self.calls = 0

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.inner.predict_proba(matrix)


class Broken:
    classes_ = np.array(["a", "b"])

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        raise RuntimeError("challenger exploded")


def predictor(estimator: Any, version: str, schema: dict[str, Any] = SCHEMA) -> Predictor:
    info = ModelInfo(
        name="m", version=version, bento_model=f"m:{version}", run_id="r", created_at="t"
    )
    return Predictor(ModelBundle(estimator=estimator, schema=schema, info=info))


def sample(registry: Any, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


def job(xs: list[float], champion: list[str], ids: list[str]) -> ShadowJob:
    return ShadowJob([{"x": x} for x in xs], "1", champion, ids, time.time())


def test_agreement_per_class_feedback_and_the_log_read_back(tmp_path: Path) -> None:
    registry = prom.CollectorRegistry()
    location = parse_location("CEPAGE_PREDICTION_LOG", str(tmp_path))
    assert location is not None
    settings = ProductionLogSettings(location=location, flush_seconds=0.1)
    log = ProductionLog(settings, prom.Counter("rows", "r", ["log", "outcome"], registry=registry))
    log.start()
    # The champion (version 1) cuts at 5, the challenger (version 2) at 3: they disagree on 4.
    shadow = Shadow(
        predictor(Threshold(3.0), "2"),
        create_shadow_metrics(registry),
        queue_requests=10,
        log=log,
    ).start()
    xs = [1.0, 4.0, 4.5, 8.0]
    ids = ["p1", "p2", "p3", "p4"]
    shadow.submit(job(xs, ["a", "a", "a", "b"], ids))
    assert shadow.wait_idle(5)

    total = "cepage_shadow_predictions_total"
    assert sample(registry, total, champion_version="1", challenger_version="2",
                  champion_label="a", challenger_label="a", agreed="true") == 1  # fmt: skip
    assert sample(registry, total, champion_version="1", challenger_version="2",
                  champion_label="a", challenger_label="b", agreed="false") == 2  # fmt: skip
    assert sample(registry, total, champion_version="1", challenger_version="2",
                  champion_label="b", challenger_label="b", agreed="true") == 1  # fmt: skip
    assert sample(registry, "cepage_shadow_requests_total", outcome="scored") == 1
    assert [shadow.answer(i) for i in ids] == ["a", "b", "b", "b"]

    # The truth: b for x > 4.2. The challenger is wrong on p2 (4.0), the champion on p3 (4.5):
    # 3 of 4 each. Feedback reaching this worker counts the challenger at once.
    truths = {"p1": "a", "p2": "a", "p3": "b", "p4": "b"}
    for pid, truth in truths.items():
        shadow.feedback(pid, truth)
        champion_label = "b" if pid == "p4" else "a"
        log.add_feedback(FeedbackRow(pid, time.time(), truth, champion_label, "1", "anonymous"))
    assert sample(registry, "cepage_shadow_feedback_total", challenger_version="2",
                  outcome="correct") == 3  # fmt: skip
    assert sample(registry, "cepage_shadow_feedback_total", challenger_version="2",
                  outcome="incorrect") == 1  # fmt: skip
    shadow.close()
    assert log.close()

    record = read_record(location, "2", "1")
    assert record == ShadowRecord("2", "1", predictions=4, agreed=2, labelled=4,
                                  challenger_correct=3, champion_correct=3)  # fmt: skip
    assert read_record(location, "3", "1").predictions == 0  # another challenger: nothing
    # Only trusted callers' labels count.
    assert read_record(location, "2", "1", trusted=["key:abc"]).labelled == 0


def test_a_failing_or_refusing_challenger_is_only_counted(tmp_path: Path) -> None:
    registry = prom.CollectorRegistry()
    metrics = create_shadow_metrics(registry)
    shadow = Shadow(predictor(Broken(), "2"), metrics, queue_requests=10)
    shadow.start()
    shadow.submit(job([1.0], ["a"], ["p1"]))
    shadow.submit(job([2.0], ["a"], ["p2"]))
    assert shadow.wait_idle(5)
    assert sample(registry, "cepage_shadow_requests_total", outcome="failed") == 2
    # A challenger with other features refuses the champion's records: unscorable, not failed.
    other = {"classes": ["a", "b"], "features": [{"name": "y", "min": 0.0, "max": 1.0}]}
    shadow.install(predictor(Threshold(0.5), "3", other))
    shadow.submit(job([1.0], ["a"], ["p3"]))
    assert shadow.wait_idle(5)
    assert sample(registry, "cepage_shadow_requests_total", outcome="unscorable") == 1
    assert sample(registry, "cepage_shadow_model_info", model_version="3") == 1
    assert sample(registry, "cepage_shadow_model_info", model_version="2") == 0
    # Still alive: a working challenger scores again.
    shadow.install(predictor(Threshold(5.0), "4"))
    shadow.submit(job([9.0], ["b"], ["p4"]))
    assert shadow.wait_idle(5)
    assert sample(registry, "cepage_shadow_requests_total", outcome="scored") == 1
    shadow.close()


def test_submit_never_waits_a_full_queue_drops() -> None:
    registry = prom.CollectorRegistry()
    gate = threading.Event()
    shadow = Shadow(
        predictor(Threshold(5.0, gate), "2"),
        create_shadow_metrics(registry),
        queue_requests=2,
    ).start()
    shadow.submit(job([1.0], ["a"], ["first"]))
    time.sleep(BATCH_SECONDS * 3)  # the challenger took it and is stuck in its model call
    started = time.perf_counter()
    for i in range(10):
        shadow.submit(job([1.0], ["a"], [f"p{i}"]))
    elapsed = time.perf_counter() - started
    # Two wait in the queue; the other eight are dropped at once.
    assert sample(registry, "cepage_shadow_requests_total", outcome="dropped") == 8
    assert elapsed < 1.0
    gate.set()
    assert shadow.wait_idle(5)
    shadow.close()


@pytest.mark.parametrize(
    ("record", "promote", "reason"),
    [
        (ShadowRecord("2", "1", 100, 90, 40, 36, 34), True, "accuracy 0.9000 against"),
        (ShadowRecord("2", "1", 100, 90, 40, 30, 34), False, "below the tolerance"),
        (ShadowRecord("2", "1", 20, 18, 15, 15, 10), False, "fewer than the 50 required"),
        (ShadowRecord("2", "1", 100, 90, 5, 5, 1), False, "5 of the records"),
    ],
)
def test_the_shadow_rule(record: ShadowRecord, promote: bool, reason: str) -> None:
    decision = decide(record, min_predictions=50, min_labelled=10, tolerance=0.01)
    assert decision.promote is promote
    assert reason in decision.reason


def test_the_shadow_setting_is_on_or_off() -> None:
    from bento.settings import load_settings

    assert load_settings({}).shadow is False
    assert load_settings({"CEPAGE_SHADOW": "on", "CEPAGE_SHADOW_QUEUE": "5"}).shadow_queue == 5
    assert load_settings({"CEPAGE_SHADOW": "On"}).shadow is True
    with pytest.raises(ValueError, match="CEPAGE_SHADOW must be on or off"):
        load_settings({"CEPAGE_SHADOW": "maybe"})


def test_requests_close_together_are_scored_in_one_call() -> None:
    """Under load the challenger scores many requests per model call; a refused request in a
    batch is refused alone."""
    registry = prom.CollectorRegistry()
    estimator = Counting(Threshold(5.0))
    shadow = Shadow(
        predictor(estimator, "2"), create_shadow_metrics(registry), queue_requests=100,
    )  # fmt: skip
    for i in range(20):
        shadow.submit(job([float(i % 10)], ["a"], [f"p{i}"]))
    shadow.submit(ShadowJob([{"x": "not a number"}], "1", ["a"], ["bad"], time.time()))
    shadow.start()
    assert shadow.wait_idle(5)
    assert estimator.calls == 1  # one call for the twenty; the refused request makes none
    assert sample(registry, "cepage_shadow_requests_total", outcome="scored") == 20
    assert sample(registry, "cepage_shadow_requests_total", outcome="unscorable") == 1
    assert [shadow.answer(f"p{i}") for i in (3, 7)] == ["a", "b"]
    shadow.close()


class FailingOnce:
    """A production log whose first write raises."""

    def __init__(self) -> None:
        self.calls = 0

    def add_shadow(self, rows: Any) -> None:
        self.calls += 1
        if self.calls == 1:
            raise OSError("disk full")


def test_rows_belong_to_the_challenger_that_scored_them_and_a_failure_spares_the_thread() -> None:
    registry = prom.CollectorRegistry()
    gate = threading.Event()
    log: Any = FailingOnce()
    shadow = Shadow(
        predictor(Threshold(5.0, gate), "2"), create_shadow_metrics(registry), queue_requests=10,
        log=log,
    ).start()  # fmt: skip
    shadow.submit(job([9.0], ["b"], ["p1"]))
    time.sleep(BATCH_SECONDS * 3)  # version 2 is scoring (held by the gate)
    shadow.install(predictor(Threshold(5.0), "3"))
    gate.set()
    assert shadow.wait_idle(5)
    total = "cepage_shadow_predictions_total"
    assert sample(registry, total, challenger_version="2", champion_label="b",
                  challenger_label="b", champion_version="1", agreed="true") == 1  # fmt: skip
    assert sample(registry, total, challenger_version="3", champion_label="b",
                  challenger_label="b", champion_version="1", agreed="true") == 0  # fmt: skip
    # The first write failed (counted); the thread goes on with the next request.
    assert sample(registry, "cepage_shadow_requests_total", outcome="failed") == 1
    shadow.submit(job([9.0], ["b"], ["p2"]))
    assert shadow.wait_idle(5)
    assert log.calls == 2
    shadow.close()
    assert sample(registry, "cepage_shadow_model_info", model_version="3") == 0


def test_a_label_sent_before_the_challenger_answered_is_counted_when_it_does() -> None:
    registry = prom.CollectorRegistry()
    shadow = Shadow(
        predictor(Threshold(5.0), "2"), create_shadow_metrics(registry), queue_requests=10
    )
    shadow.submit(job([9.0, 1.0], ["b", "a"], ["p1", "p2"]))
    shadow.feedback("p1", "b")  # at once: the challenger sleeps through its batch window
    shadow.feedback("p2", "b")
    assert sample(registry, "cepage_shadow_feedback_total", challenger_version="2",
                  outcome="correct") == 0  # fmt: skip
    shadow.start()
    assert shadow.wait_idle(5)
    assert sample(registry, "cepage_shadow_feedback_total", challenger_version="2",
                  outcome="correct") == 1  # fmt: skip
    assert sample(registry, "cepage_shadow_feedback_total", challenger_version="2",
                  outcome="incorrect") == 1  # fmt: skip
    shadow.close()
