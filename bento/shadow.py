"""The shadow challenger: a second model answers each request off the response path.

The champion answers the caller; then the records go into a bounded queue, and a daemon thread
scores them with the packaged ``@challenger`` (``contracts.names.challenger_store_name``). The
caller never waits for it and never sees it: a full queue drops the work (counted), a challenger
that fails or cannot score a record only counts it. What each model answered to the same records
is counted per pair of classes (agreement, per class), written to the production log's ``shadow``
dataset (joined later with the feedback labels: ``cepage promote --shadow``), and kept in memory
for a while so a feedback that reaches this worker also counts the challenger right or wrong.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bento.predictor import Predictor, RowPrediction, UnscorableError
from bento.production_log import ProductionLog, ShadowRow

logger = logging.getLogger("cepage.service")

# What became of a request sent to the shadow.
OUTCOMES = ("scored", "dropped", "unscorable", "failed")
# Latency of the challenger's scoring, off the response path (seconds).
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# The shadow scores what arrived within this long after a request in one call, up to this many
# records: under load one call for many requests, at one request at a time a 50 ms delay that no
# caller waits for.
BATCH_SECONDS = 0.05
BATCH_RECORDS = 1000
# How many recent prediction ids a worker remembers the challenger's answer for.
REMEMBERED_IDS = 100_000
JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ShadowMetrics:
    """``cepage_shadow_*``: made in the worker, like the service's own (bento/metrics.py)."""

    requests: Any  # [outcome]
    predictions: Any  # [champion_version, challenger_version, champion_label, challenger_label,
    #                    agreed]
    feedback: Any  # [challenger_version, outcome]
    seconds: Any  # histogram
    info: Any  # [model_version]


def create_shadow_metrics(registry: Any = None) -> ShadowMetrics:
    """Register the shadow's metrics (in ``registry``, default the process's)."""
    import prometheus_client as prom

    registry = prom.REGISTRY if registry is None else registry
    return ShadowMetrics(
        requests=prom.Counter(
            "cepage_shadow_requests_total",
            "Requests handed to the shadow challenger, by what became of them: scored, dropped "
            "(queue full), unscorable (the challenger refused a record), failed (an error).",
            ["outcome"],
            registry=registry,
        ),
        predictions=prom.Counter(
            "cepage_shadow_predictions_total",
            "Records both models answered, by each one's class; agreed: the same class (a label "
            "of its own because PromQL cannot compare two labels).",
            [
                "champion_version",
                "challenger_version",
                "champion_label",
                "challenger_label",
                "agreed",
            ],
            registry=registry,
        ),
        feedback=prom.Counter(
            "cepage_shadow_feedback_total",
            "Feedback labels for records the challenger answered on this worker, by whether the "
            "challenger was right.",
            ["challenger_version", "outcome"],
            registry=registry,
        ),
        seconds=prom.Histogram(
            "cepage_shadow_seconds",
            "Time the challenger took per call, one call for the requests that arrived within "
            "50 ms of each other (off the response path).",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        ),
        info=prom.Gauge(
            "cepage_shadow_model_info",
            "1 for the challenger version a worker shadows.",
            ["model_version"],
            multiprocess_mode="livemax",
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class ShadowJob:
    """One request the champion answered: its records and what the champion said."""

    records: Sequence[Mapping[str, Any]]
    champion_version: str
    champion_labels: Sequence[str]
    prediction_ids: Sequence[str]
    time: float


class Shadow:
    """Scores each submitted job with the challenger on its own thread."""

    def __init__(
        self,
        predictor: Predictor,
        metrics: ShadowMetrics,
        *,
        queue_requests: int,
        log: ProductionLog | None = None,
        remembered: int = REMEMBERED_IDS,
    ) -> None:
        self._metrics = metrics
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=queue_requests)
        self._log = log
        self._remembered = remembered
        self._answers: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> (version, label)
        # Labels that arrived before the challenger answered (it scores up to BATCH_SECONDS
        # later): counted when it does.
        self._early: OrderedDict[str, str] = OrderedDict()  # id -> label
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._dropping = False
        self._failing = False
        for outcome in OUTCOMES:
            metrics.requests.labels(outcome)  # series at zero
        self.predictor = predictor
        self._announce(None, predictor)

    @property
    def version(self) -> str:
        return self.predictor.bundle.info.version

    @property
    def predictor_tag(self) -> str:
        """The BentoML tag of the challenger shadowed (what the store watcher compares)."""
        return self.predictor.bundle.info.bento_model

    def start(self) -> Shadow:
        self._thread.start()
        return self

    def install(self, predictor: Predictor) -> None:
        """Shadow another challenger (a newer one packaged); jobs already queued get it too."""
        old, self.predictor = self.predictor, predictor
        self._announce(old, predictor)

    def submit(self, job: ShadowJob) -> None:
        """Queue ``job`` without waiting; a full queue drops it (counted, logged once)."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._metrics.requests.labels("dropped").inc()
            if not self._dropping:
                self._dropping = True
                logger.warning(
                    "The shadow challenger is behind (%d requests queued): dropping requests "
                    "until it catches up (cepage_shadow_requests_total).",
                    self._queue.maxsize,
                )
        else:
            self._dropping = False

    def feedback(self, prediction_id: str, label: str) -> None:
        """Count the challenger right or wrong on a labelled prediction it answered here (or
        will answer: a label sent right after the prediction waits for the challenger)."""
        with self._lock:
            answer = self._answers.get(prediction_id)
            if answer is None:
                self._early[prediction_id] = label
                if len(self._early) > self._remembered:
                    self._early.popitem(last=False)
        if answer is not None:
            self._count_feedback(answer[0], answer[1], label)

    def _count_feedback(self, version: str, predicted: str, label: str) -> None:
        outcome = "correct" if predicted == label else "incorrect"
        self._metrics.feedback.labels(version, outcome).inc()

    def answer(self, prediction_id: str) -> str | None:
        """The challenger's class for a prediction this worker shadowed (recent ones only)."""
        with self._lock:
            found = self._answers.get(prediction_id)
        return None if found is None else found[1]

    def close(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        """Stop after the job in hand; what is still queued is dropped (shutdown never waits
        for the shadow)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
        with contextlib.suppress(queue.Full):  # just drained: only a racing submit fills it
            self._queue.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._metrics.info.labels(self.version).set(0)

    def wait_idle(self, timeout: float) -> bool:
        """Until every queued job is scored (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def _announce(self, old: Predictor | None, new: Predictor) -> None:
        if old is not None:
            self._metrics.info.labels(old.bundle.info.version).set(0)
        info = new.bundle.info
        self._metrics.info.labels(info.version).set(1)
        # Series at zero before the first label: increase() misses what a series starts with.
        for outcome in ("correct", "incorrect"):
            self._metrics.feedback.labels(info.version, outcome)
        logger.info("Shadowing challenger %s (MLflow version %s)", info.bento_model, info.version)

    def _run(self) -> None:
        while True:
            batch = self._take()
            jobs = [job for job in batch if job is not None]
            try:
                if jobs:
                    self._score(jobs)
            except Exception:  # counting or logging failed: the thread must outlive it
                self._metrics.requests.labels("failed").inc(len(jobs))
                logger.exception("The shadow could not record a batch; it goes on.")
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return

    def _take(self) -> list[ShadowJob | None]:
        """The next job, and those that arrived BATCH_SECONDS after it (BATCH_RECORDS records
        at most): one model call for all of them.

        The thread sleeps through the window instead of waiting on the queue: a waiter would be
        woken by every request and take Python's lock from the event loop each time (measured:
        a fifth of the throughput at 32 clients); sleeping, it wakes once per batch.
        """
        first = self._queue.get()
        batch = [first]
        if first is None:
            return batch
        time.sleep(BATCH_SECONDS)
        records = len(first.records)
        while records < BATCH_RECORDS:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(job)
            if job is None:
                break
            records += len(job.records)
        return batch

    def _score(self, jobs: list[ShadowJob]) -> None:
        """Score the jobs the challenger accepts in one call (a request whose records its schema
        refuses, e.g. another feature set, is counted unscorable alone)."""
        predictor = self.predictor
        started = time.perf_counter()
        try:
            accepted = [job for job in jobs if not predictor.check(job.records, len(job.records))]
            refused = len(jobs) - len(accepted)
            if refused:
                self._metrics.requests.labels("unscorable").inc(refused)
            if not accepted:
                return
            records = [record for job in accepted for record in job.records]
            try:
                rows = predictor.predict_inputs(predictor.inputs(records))
            except UnscorableError:
                if len(accepted) > 1:  # which request: one at a time
                    for job in accepted:
                        self._score([job])
                    return
                self._metrics.requests.labels("unscorable").inc()
                return
        except Exception:  # a broken challenger must never reach the champion's callers
            self._metrics.requests.labels("failed").inc(len(jobs))
            if not self._failing:
                self._failing = True
                logger.exception("The shadow challenger failed; the champion is unaffected.")
            return
        self._failing = False
        self._metrics.seconds.observe(time.perf_counter() - started)
        self._metrics.requests.labels("scored").inc(len(accepted))
        offset = 0
        for job in accepted:
            # The predictor that scored them: install() may have swapped it meanwhile.
            self._record(predictor, job, rows[offset : offset + len(job.records)])
            offset += len(job.records)

    def _record(self, predictor: Predictor, job: ShadowJob, rows: list[RowPrediction]) -> None:
        """Count, remember and log what ``predictor`` answered to one job's records."""
        info = predictor.bundle.info
        counted = self._metrics.predictions
        early = []
        with self._lock:
            for pid, row in zip(job.prediction_ids, rows, strict=True):
                self._answers[pid] = (info.version, row.label)
                if len(self._answers) > self._remembered:
                    self._answers.popitem(last=False)
                label = self._early.pop(pid, None)
                if label is not None:
                    early.append((row.label, label))
        for predicted, label in early:
            self._count_feedback(info.version, predicted, label)
        for champion, row in zip(job.champion_labels, rows, strict=True):
            agreed = "true" if champion == row.label else "false"
            counted.labels(job.champion_version, info.version, champion, row.label, agreed).inc()
        if self._log is not None:
            self._log.add_shadow(
                [
                    ShadowRow(
                        pid,
                        job.time,
                        info.name,
                        info.version,
                        row.label,
                        row.probabilities,
                        job.champion_version,
                        champion,
                    )
                    for pid, champion, row in zip(
                        job.prediction_ids, job.champion_labels, rows, strict=True
                    )
                ]
            )
