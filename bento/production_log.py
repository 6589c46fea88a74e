"""The production log: every prediction and feedback the service answers, kept off the request
path as Parquet files (layout and names: ``contracts/production_log.py``).

A request only puts rows into a bounded in-memory queue (``put_nowait``: when it is full the row
is counted as dropped, never waited for). One daemon thread per dataset and worker takes them out
and writes them when ``batch_rows`` rows are waiting or every ``flush_seconds``, whichever comes
first (so a row waits ``flush_seconds`` at most); closing (the service's shutdown hook) writes
what is held. A
failed write (disk full, S3 down) is logged once per run of failures and counted, never raised.

The same code writes to a local directory and to S3, through ``pyarrow.fs``. pyarrow is imported
by the writer thread at its first file, not when the service starts; a worker that keeps no log
never imports it (:func:`keep_arrow_unloaded`).

What becomes of each row is counted in ``cepage_prediction_log_rows_total{log, outcome}``:
``written``, ``dropped`` (queue full), ``failed`` (write error) or ``sampled_out``
(``CEPAGE_PREDICTION_LOG_SAMPLE``). A killed worker loses at most what it had not yet written:
``cepage_predictions_total`` minus the four outcomes.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.abc
import logging
import os
import queue
import secrets
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

from bento.settings import ProductionLogSettings
from contracts import production_log as names
from contracts.features import BOOLEAN, CATEGORY, NUMERIC_KINDS
from contracts.production_log import LogLocation, part_name, partition_dir, utc_day

logger = logging.getLogger("cepage.service")


def keep_arrow_unloaded() -> bool:
    """Hide pyarrow from this process, for a worker that keeps no log; True when hidden.

    pandas imports pyarrow whenever it is installed (for its optional Arrow-backed types), and
    scikit-learn imports pandas: without this, every worker maps Arrow's libraries, ~28 MiB of
    its unique memory and ~0.1 s of its start, for a log it does not write. An import finder
    first in ``sys.meta_path`` makes an import of pyarrow fail as if it were not installed,
    which pandas and scikit-learn handle (pandas' string columns then use Python storage: the
    same values). Only before pandas is imported; a process that already holds either keeps them.
    """
    if "pandas" in sys.modules or "pyarrow" in sys.modules:
        return False
    if not any(isinstance(finder, _NoArrow) for finder in sys.meta_path):
        sys.meta_path.insert(0, _NoArrow())
    return True


class _NoArrow(importlib.abc.MetaPathFinder):
    """Refuses ``pyarrow`` and its submodules (see :func:`keep_arrow_unloaded`)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "pyarrow" or fullname.startswith("pyarrow."):
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (hidden: CEPAGE_PREDICTION_LOG is off)",
                name=fullname,
            )


OUTCOMES = ("written", "dropped", "failed", "sampled_out")
# How long the shutdown hook waits for the writers to write what they hold.
CLOSE_TIMEOUT_S = 15.0
# S3: fail a write rather than hang on an unreachable endpoint.
S3_CONNECT_TIMEOUT_S = 5.0
S3_REQUEST_TIMEOUT_S = 30.0


class PredictionRow(NamedTuple):
    """One scored record, as the request saw it (converted to Arrow by the writer thread)."""

    features: Sequence[str]  # the served model's features, in schema order
    kinds: Sequence[str]  # their kinds (contracts.features)
    prediction_id: str
    time: float  # epoch seconds
    model_name: str
    model_version: str
    label: str
    probabilities: Mapping[str, float]
    out_of_range: Sequence[str]
    inputs: Mapping[str, Any]  # the record as sent (already checked against the schema)


class FeedbackRow(NamedTuple):
    """One accepted feedback."""

    prediction_id: str
    time: float
    label: str
    predicted: str
    model_version: str
    who: str


class ShadowRow(NamedTuple):
    """What the shadow challenger answered to one record the champion answered."""

    prediction_id: str  # the champion's answer's id (feedback joins on it)
    time: float
    model_name: str
    model_version: str  # the challenger's
    label: str  # the challenger's
    probabilities: Mapping[str, float]
    champion_version: str
    champion_label: str


def caller_identity(api_key: str | None) -> str:
    """Who sent a request: with an API key configured, a short fingerprint of the key it passed
    the guard with (``key:`` and the first 12 hex digits of its SHA-256: tells which key, cannot
    give it back); without one, ``anonymous``. There is one key at a time, so the key a request
    presented is the configured one (any other was answered 401)."""
    if not api_key:
        return names.ANONYMOUS
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def keeps(prediction_id: str, share: float) -> bool:
    """Whether the log keeps this prediction (and its feedback) at sampling ``share``.

    Decided by a hash of the id, not a coin: every worker and replica agrees, so the feedback
    of a kept prediction is kept and that of a dropped one is not.
    """
    if share >= 1.0:
        return True
    if share <= 0.0:
        return False
    digest = hashlib.blake2b(prediction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2.0**64


class ParquetSink:
    """Writes one Arrow table as one file of a partition, atomically (``pyarrow.fs``)."""

    def __init__(
        self, location: LogLocation, *, endpoint: str | None = None, region: str | None = None
    ) -> None:
        self.location = location
        self._endpoint = endpoint
        self._region = region
        self._fs: Any = None
        self._lock = threading.Lock()

    def filesystem(self) -> Any:
        """The ``pyarrow.fs`` file system (made, and pyarrow imported, on first use)."""
        with self._lock:
            if self._fs is None:
                self._fs = self._make_filesystem()
            return self._fs

    def _make_filesystem(self) -> Any:
        from pyarrow import fs

        if not self.location.is_s3:
            return fs.LocalFileSystem()
        options: dict[str, Any] = {
            "connect_timeout": S3_CONNECT_TIMEOUT_S,
            "request_timeout": S3_REQUEST_TIMEOUT_S,
        }
        if self._endpoint:
            scheme, _, host = self._endpoint.partition("://")
            options.update(endpoint_override=host, scheme=scheme)
        if self._region:
            options["region"] = self._region
        # Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (AWS's usual chain).
        return fs.S3FileSystem(**options)

    def write(self, directory: str, table: Any) -> str:
        """Write ``table`` as a new file under ``directory`` (relative to the root); its path.

        Locally the file is written under a hidden temporary name and renamed, so a reader never
        sees half a file; on S3 one PUT is atomic by itself.
        """
        import pyarrow.parquet as pq

        filesystem = self.filesystem()
        folder = self.location.join(directory)
        now = time.time()
        final = f"{folder}/{part_name(os.getpid(), now, secrets.token_hex(4))}"
        if self.location.is_s3:
            with filesystem.open_output_stream(final) as out:
                pq.write_table(table, out)
            return final
        filesystem.create_dir(folder, recursive=True)
        temporary = f"{folder}/.{final.rsplit('/', 1)[1]}.tmp"
        try:
            with filesystem.open_output_stream(temporary) as out:
                pq.write_table(table, out)
            filesystem.move(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                filesystem.delete_file(temporary)
            raise
        return final


class BatchWriter:
    """A bounded queue of rows and the daemon thread that writes them in batches.

    ``partition(row)`` groups a batch's rows (one file per group); ``write(key, rows)`` writes
    one group, raising on failure. ``counters`` maps each outcome to its counter.
    """

    def __init__(
        self,
        name: str,
        *,
        partition: Callable[[Any], Hashable],
        write: Callable[[Any, list[Any]], None],
        counters: Mapping[str, Any],
        queue_rows: int,
        batch_rows: int,
        flush_seconds: float,
    ) -> None:
        self.name = name
        self._partition = partition
        self._write = write
        self._counters = counters
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_rows)
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._stopping = threading.Event()
        # Set by a full batch or by stop(): the writer sleeps on it, flush_seconds at most, so
        # it wakes once per file rather than once per row.
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-log", daemon=True)
        self._dropping = False
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def put(self, row: Any) -> None:
        """Queue ``row``; when the queue is full (or the writer closed), count it as dropped."""
        if not self._stopping.is_set():
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                pass
            else:
                self._dropping = False
                if self._queue.qsize() >= self._batch_rows:
                    self._wake.set()
                return
        self._counters["dropped"].inc()
        if not self._dropping:
            self._dropping = True
            logger.warning(
                "The %s log's queue is full (%d rows): dropping rows until it drains "
                "(counted in cepage_prediction_log_rows_total).",
                self.name,
                self._queue.maxsize,
            )

    def count(self, outcome: str, rows: int = 1) -> None:
        self._counters[outcome].inc(rows)

    @property
    def waiting(self) -> int:
        """Rows queued and not yet taken by the writer."""
        return self._queue.qsize()

    def stop(self) -> None:
        """Ask the writer to write what it holds and stop (see :meth:`join`)."""
        self._stopping.set()
        self._wake.set()  # at once if it waits; after its current file if it writes

    def join(self, timeout: float) -> bool:
        """Wait for the writer to finish; False when it is still writing after ``timeout`` s."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        self.stop()
        return self.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self._write_waiting()
        self._write_waiting()
        # A request that checked `_stopping` just before it was set may still have queued a row
        # after the last write: counted as dropped, so that no row goes uncounted.
        late = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            late += 1
        if late:
            self._counters["dropped"].inc(late)

    def _write_waiting(self) -> None:
        """Write every row waiting now, ``batch_rows`` per file at most."""
        rows = []
        for _ in range(self._queue.maxsize):
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for start in range(0, len(rows), self._batch_rows):
            self._flush(rows[start : start + self._batch_rows])

    def _flush(self, batch: list[Any]) -> None:
        groups: dict[Hashable, list[Any]] = defaultdict(list)
        for row in batch:
            groups[self._partition(row)].append(row)
        for key, rows in groups.items():
            try:
                self._write(key, rows)
            except Exception as exc:  # never let a write error kill the writer
                self.count("failed", len(rows))
                if not self._failing:
                    self._failing = True
                    logger.error(
                        "The %s log cannot write (%s: %s): rows are lost until it can again "
                        "(counted as failed in cepage_prediction_log_rows_total).",
                        self.name,
                        type(exc).__name__,
                        exc,
                    )
                continue
            self.count("written", len(rows))
            if self._failing:
                self._failing = False
                logger.info("The %s log writes again.", self.name)


def prediction_table(rows: Sequence[PredictionRow], exclude: frozenset[str]) -> Any:
    """The Arrow table of rows of one model (``rows[0]``'s features), ``exclude`` left out."""
    import pyarrow as pa

    first = rows[0]
    types = {BOOLEAN: pa.bool_(), CATEGORY: pa.string()}
    fields, arrays = [], []
    for name, kind in zip(first.features, first.kinds, strict=True):
        if name in exclude:
            continue
        values = [row.inputs.get(name) for row in rows]
        if kind in NUMERIC_KINDS:
            values = [None if v is None else float(v) for v in values]
        arrow_type = types.get(kind, pa.float64())
        fields.append(pa.field(name, arrow_type, nullable=True))
        arrays.append(pa.array(values, type=arrow_type))
    if fields:
        inputs = pa.StructArray.from_arrays(arrays, fields=fields)
    else:  # every feature excluded: Parquet has no empty struct, so the struct is all null
        fields = [pa.field("_excluded", pa.null())]
        inputs = pa.StructArray.from_arrays([pa.nulls(len(rows))], fields=fields)
    columns = {
        names.PREDICTION_ID: pa.array([r.prediction_id for r in rows], pa.string()),
        names.TIME: _times(pa, [r.time for r in rows]),
        names.MODEL_NAME: pa.array([r.model_name for r in rows], pa.string()),
        names.MODEL_VERSION: pa.array([r.model_version for r in rows], pa.string()),
        names.LABEL: pa.array([r.label for r in rows], pa.string()),
        names.PROBABILITIES: _probabilities(pa, rows),
        names.OUT_OF_RANGE: pa.array([list(r.out_of_range) for r in rows], pa.list_(pa.string())),
        names.INPUTS: inputs,
    }
    return pa.table(columns)


def feedback_table(rows: Sequence[FeedbackRow]) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            names.PREDICTION_ID: pa.array([r.prediction_id for r in rows], pa.string()),
            names.TIME: _times(pa, [r.time for r in rows]),
            names.LABEL: pa.array([r.label for r in rows], pa.string()),
            names.PREDICTED: pa.array([r.predicted for r in rows], pa.string()),
            names.MODEL_VERSION: pa.array([r.model_version for r in rows], pa.string()),
            names.WHO: pa.array([r.who for r in rows], pa.string()),
        }
    )


def shadow_table(rows: Sequence[ShadowRow]) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            names.PREDICTION_ID: pa.array([r.prediction_id for r in rows], pa.string()),
            names.TIME: _times(pa, [r.time for r in rows]),
            names.MODEL_NAME: pa.array([r.model_name for r in rows], pa.string()),
            names.MODEL_VERSION: pa.array([r.model_version for r in rows], pa.string()),
            names.LABEL: pa.array([r.label for r in rows], pa.string()),
            names.PROBABILITIES: _probabilities(pa, rows),
            names.CHAMPION_VERSION: pa.array([r.champion_version for r in rows], pa.string()),
            names.CHAMPION_LABEL: pa.array([r.champion_label for r in rows], pa.string()),
        }
    )


def _probabilities(pa: Any, rows: Sequence[PredictionRow | ShadowRow]) -> Any:
    """Each row's class probabilities as map<string, double>."""
    return pa.array(
        [list(r.probabilities.items()) for r in rows], pa.map_(pa.string(), pa.float64())
    )


def _times(pa: Any, seconds: list[float]) -> Any:
    return pa.array([round(s * 1000) for s in seconds], pa.timestamp("ms", tz="UTC"))


class ProductionLog:
    """The datasets of one worker: predictions, feedback and the shadow's answers, each with its
    writer (the shadow's starts with the first row: most services run no shadow)."""

    def __init__(
        self,
        settings: ProductionLogSettings,
        counter: Any,
        sink: ParquetSink | None = None,
    ) -> None:
        """``counter``: ``cepage_prediction_log_rows_total`` (labels ``log``, ``outcome``)."""
        if settings.location is None:
            raise ValueError("the production log is off (CEPAGE_PREDICTION_LOG): nothing to write")
        self.settings = settings
        self.sink = sink or ParquetSink(
            settings.location, endpoint=settings.s3_endpoint, region=settings.s3_region
        )
        self._sample = settings.sample
        self._imported = False

        def writer(dataset: str, partition: Callable[[Any], Hashable], write: Any) -> BatchWriter:
            counters = {o: counter.labels(dataset, o) for o in OUTCOMES}  # series at zero
            return BatchWriter(
                dataset,
                partition=partition,
                write=write,
                counters=counters,
                queue_rows=settings.queue_rows,
                batch_rows=settings.batch_rows,
                flush_seconds=settings.flush_seconds,
            )

        self.predictions = writer(names.PREDICTIONS, _prediction_key, self._write_predictions)
        self.feedback = writer(names.FEEDBACK, _feedback_key, self._write_feedback)
        self.shadow = writer(names.SHADOW, _shadow_key, self._write_shadow)
        self._shadow_started = False

    def start(self) -> ProductionLog:
        self.predictions.start()
        self.feedback.start()
        return self

    def keeps(self, prediction_id: str) -> bool:
        return keeps(prediction_id, self._sample)

    def add_predictions(self, rows: Sequence[PredictionRow]) -> None:
        """Queue the rows of one request (those the sample keeps)."""
        skipped = 0
        for row in rows:
            if self.keeps(row.prediction_id):
                self.predictions.put(row)
            else:
                skipped += 1
        if skipped:
            self.predictions.count("sampled_out", skipped)

    def add_feedback(self, row: FeedbackRow) -> None:
        if self.keeps(row.prediction_id):
            self.feedback.put(row)
        else:
            self.feedback.count("sampled_out")

    def add_shadow(self, rows: Sequence[ShadowRow]) -> None:
        """Queue the shadow's answers (those whose prediction the sample keeps). Called from the
        shadow's thread only."""
        if not self._shadow_started:
            self.shadow.start()
            self._shadow_started = True
        skipped = 0
        for row in rows:
            if self.keeps(row.prediction_id):
                self.shadow.put(row)
            else:
                skipped += 1
        if skipped:
            self.shadow.count("sampled_out", skipped)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Write what is held and stop the writers; False if one is still writing after
        ``timeout`` s (its rows are then lost with the process)."""
        writers = [self.predictions, self.feedback]
        if self._shadow_started:
            writers.append(self.shadow)
        for writer in writers:
            writer.stop()
        deadline = time.monotonic() + timeout
        done = True
        for writer in writers:
            done = writer.join(max(0.0, deadline - time.monotonic())) and done
        if not done:
            logger.error("The production log did not finish writing within %.0f s.", timeout)
        return done

    def _first_import(self) -> None:
        """pyarrow is imported by the first write; its objects then join the frozen heap
        (bento/served.py: freeze_heap), as if the service had imported it at start."""
        if not self._imported:
            import pyarrow.parquet  # noqa: F401

            self._imported = True
            gc.freeze()

    def _write_predictions(self, key: tuple[str, str, int], rows: list[PredictionRow]) -> None:
        self._first_import()
        day, version, _ = key
        table = prediction_table(rows, self.settings.exclude)
        self.sink.write(partition_dir(names.PREDICTIONS, day, version), table)

    def _write_feedback(self, key: str, rows: list[FeedbackRow]) -> None:
        self._first_import()
        self.sink.write(partition_dir(names.FEEDBACK, key), feedback_table(rows))

    def _write_shadow(self, key: tuple[str, str], rows: list[ShadowRow]) -> None:
        self._first_import()
        day, version = key
        self.sink.write(partition_dir(names.SHADOW, day, version), shadow_table(rows))


def _prediction_key(row: PredictionRow) -> tuple[str, str, int]:
    # The features list's identity too: a reloaded model under the same version is another file.
    return utc_day(row.time), row.model_version, id(row.features)


def _feedback_key(row: FeedbackRow) -> str:
    return utc_day(row.time)


def _shadow_key(row: ShadowRow) -> tuple[str, str]:
    return utc_day(row.time), row.model_version
