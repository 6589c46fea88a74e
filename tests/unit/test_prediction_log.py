"""The production log (bento/production_log.py): a bounded queue off the request path, batches
written on size, on time and on close, the Parquet files' layout and schema, excluded columns,
sampling, and write failures counted, never raised."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from bento.production_log import (
    BatchWriter,
    FeedbackRow,
    PredictionRow,
    ProductionLog,
    caller_identity,
    keeps,
)
from bento.settings import ProductionLogSettings, production_log_settings
from contracts import production_log as names
from contracts.production_log import LogLocation, parse_location, part_name, partition_dir
from tests.support.mixed_data import api_record, customers, linear_probabilities
from tests.support.procs import ROOT

FEATURES = ("alcohol", "rooms", "paperless billing", "plan type", "email")
KINDS = ("number", "integer", "boolean", "category", "category")
T0 = 1_795_000_000.123  # 2026-11-18 UTC


class Counter:
    def __init__(self) -> None:
        self.value = 0.0
        self._lock = threading.Lock()

    def inc(self, amount: float = 1) -> None:
        with self._lock:
            self.value += amount


class LabelledCounter:
    """Stands in for a prometheus_client Counter with labels."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, ...], Counter] = defaultdict(Counter)

    def labels(self, *values: str) -> Counter:
        return self.series[values]

    def value(self, *values: str) -> float:
        return self.series[values].value


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


class Recorder:
    """A BatchWriter's ``write``: keeps each batch it was given (or raises while ``broken``)."""

    def __init__(self) -> None:
        self.batches: list[tuple[Any, list[Any]]] = []
        self.broken = False

    def __call__(self, key: Any, rows: list[Any]) -> None:
        if self.broken:
            raise OSError(28, "No space left on device")
        self.batches.append((key, list(rows)))

    @property
    def rows(self) -> list[Any]:
        return [row for _, rows in self.batches for row in rows]


def batch_writer(
    recorder: Recorder, *, queue_rows: int = 100, batch_rows: int = 10, flush_seconds: float = 60
) -> tuple[BatchWriter, LabelledCounter]:
    counter = LabelledCounter()
    writer = BatchWriter(
        "predictions",
        partition=lambda row: row % 2,
        write=recorder,
        counters={o: counter.labels(o) for o in ("written", "dropped", "failed", "sampled_out")},
        queue_rows=queue_rows,
        batch_rows=batch_rows,
        flush_seconds=flush_seconds,
    )
    return writer, counter


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_a_full_queue_drops_and_counts_and_never_blocks(recorder: Recorder) -> None:
    writer, counter = batch_writer(recorder, queue_rows=3)  # not started: nothing drains it
    started = time.monotonic()
    for row in range(5):
        writer.put(row)
    assert time.monotonic() - started < 0.1
    assert writer.waiting == 3
    assert counter.value("dropped") == 2
    writer.start()
    assert writer.close(timeout=10)
    assert sorted(recorder.rows) == [0, 1, 2]
    assert counter.value("written") == 3


def test_a_batch_is_written_as_soon_as_batch_rows_wait(recorder: Recorder) -> None:
    writer, counter = batch_writer(recorder, batch_rows=4, flush_seconds=60)
    writer.start()
    try:
        for row in range(3):
            writer.put(row)
        time.sleep(0.3)
        assert counter.value("written") == 0  # 3 rows: the batch is not full, 60 s are not up
        started = time.monotonic()
        writer.put(3)
        assert wait_for(lambda: counter.value("written") == 4, timeout=5)
        assert time.monotonic() - started < 2
        assert sorted(recorder.rows) == [0, 1, 2, 3]
        # One file per partition of the batch.
        assert sorted(key for key, _ in recorder.batches) == [0, 1]
    finally:
        writer.close(timeout=10)


def test_rows_are_written_every_flush_seconds(recorder: Recorder) -> None:
    writer, counter = batch_writer(recorder, batch_rows=1000, flush_seconds=1.0)
    writer.start()
    try:
        put_at = time.monotonic()
        writer.put(1)
        writer.put(3)
        time.sleep(0.3)
        assert counter.value("written") == 0
        assert wait_for(lambda: counter.value("written") == 2, timeout=5)
        assert 0.5 < time.monotonic() - put_at < 2.5  # the period, not at once, not late
        assert recorder.batches == [(1, [1, 3])]
        writer.put(5)
        assert wait_for(lambda: counter.value("written") == 3, timeout=5)
    finally:
        writer.close(timeout=10)


def test_close_writes_everything_held(recorder: Recorder) -> None:
    writer, counter = batch_writer(recorder, queue_rows=1000, batch_rows=30, flush_seconds=60)
    writer.start()
    for row in range(100):
        writer.put(row)
    assert writer.close(timeout=10)
    assert sorted(recorder.rows) == list(range(100))
    assert all(len(rows) <= 30 for _, rows in recorder.batches)
    assert counter.value("written") == 100
    writer.put(100)  # after close: counted, not queued for nobody
    assert counter.value("dropped") == 1


def test_a_failed_write_is_counted_and_logged_once_per_burst(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    writer, counter = batch_writer(recorder, batch_rows=2, flush_seconds=60)
    recorder.broken = True
    writer.start()
    try:
        with caplog.at_level(logging.INFO, logger="cepage.service"):
            for row in (0, 2, 4, 6):  # two batches, both fail
                writer.put(row)
            assert wait_for(lambda: counter.value("failed") == 4)
            recorder.broken = False
            writer.put(8)
            writer.put(10)
            assert wait_for(lambda: counter.value("written") == 2)
    finally:
        writer.close(timeout=10)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left" in errors[0].getMessage()
    assert any("writes again" in r.getMessage() for r in caplog.records)
    assert recorder.rows == [8, 10]


# --- the Parquet files ---


def settings(root: Path, **overrides: Any) -> ProductionLogSettings:
    options: dict[str, Any] = {"location": LogLocation("file", str(root)), "flush_seconds": 60.0}
    options.update(overrides)
    return ProductionLogSettings(**options)


def prediction(index: int, inputs: dict[str, Any], when: float = T0) -> PredictionRow:
    return PredictionRow(
        FEATURES,
        KINDS,
        f"p1.id{index}.sig",
        when,
        "cepage-classifier",
        "3",
        "yes",
        {"no": 0.25, "yes": 0.75},
        ["rooms"] if index % 2 else [],
        inputs,
    )


RECORDS: list[dict[str, Any]] = [
    {"alcohol": 13.2, "rooms": 3, "paperless billing": True, "plan type": "basic", "email": "a@b"},
    {"alcohol": None, "rooms": 2.5, "paperless billing": None, "plan type": "new plan"},
    {"alcohol": 1e308, "rooms": 10**20, "paperless billing": False, "plan type": None},
]


@pytest.fixture
def log_counter() -> LabelledCounter:
    return LabelledCounter()


@contextmanager
def written_log(root: Path, counter: LabelledCounter, **overrides: Any) -> Iterator[ProductionLog]:
    log = ProductionLog(settings(root, **overrides), counter).start()
    try:
        yield log
    finally:
        log.close(timeout=10)


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_predictions_are_parquet_partitioned_by_date_and_version(
    tmp_path: Path, log_counter: LabelledCounter
) -> None:
    with written_log(tmp_path, log_counter, exclude=frozenset({"email"})) as log:
        log.add_predictions([prediction(i, record) for i, record in enumerate(RECORDS)])
        log.add_predictions([prediction(9, RECORDS[0], when=T0 + 86_400)])  # the next day
    assert log_counter.value("predictions", "written") == 4
    written = files(tmp_path)
    # Closing may end a batch early: a partition can have more than one file.
    assert sorted({p.parent.relative_to(tmp_path).as_posix() for p in written}) == [
        "predictions/date=2026-11-18/model_version=3",
        "predictions/date=2026-11-19/model_version=3",
    ]
    for path in written:
        assert path.name.startswith("part-") and path.suffix == ".parquet"
    first_day = sorted(tmp_path.glob("predictions/date=2026-11-18/*/*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in first_day]).sort_by("prediction_id")
    assert table.schema == pa.schema(
        [
            ("prediction_id", pa.string()),
            ("time", pa.timestamp("ms", tz="UTC")),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("label", pa.string()),
            ("probabilities", pa.map_(pa.string(), pa.float64())),
            ("out_of_range", pa.list_(pa.string())),
            (
                "inputs",
                pa.struct(
                    [
                        ("alcohol", pa.float64()),
                        ("rooms", pa.float64()),
                        ("paperless billing", pa.bool_()),
                        ("plan type", pa.string()),
                    ]
                ),
            ),
        ]
    )
    assert tuple(table.column_names) == names.PREDICTION_COLUMNS
    rows = table.to_pylist()
    assert [r["prediction_id"] for r in rows] == ["p1.id0.sig", "p1.id1.sig", "p1.id2.sig"]
    assert rows[0]["time"].timestamp() == pytest.approx(T0, abs=0.001)
    assert rows[0]["probabilities"] == [("no", 0.25), ("yes", 0.75)]
    assert [r["out_of_range"] for r in rows] == [[], ["rooms"], []]
    assert [r["inputs"] for r in rows] == [
        {"alcohol": 13.2, "rooms": 3.0, "paperless billing": True, "plan type": "basic"},
        {"alcohol": None, "rooms": 2.5, "paperless billing": None, "plan type": "new plan"},
        {"alcohol": 1e308, "rooms": 1e20, "paperless billing": False, "plan type": None},
    ]


def test_the_dataset_reads_back_with_string_partitions(
    tmp_path: Path, log_counter: LabelledCounter
) -> None:
    with written_log(tmp_path, log_counter) as log:
        log.add_predictions([prediction(i, RECORDS[0]) for i in range(3)])
        log.add_feedback(FeedbackRow("p1.id1.sig", T0 + 5, "no", "yes", "3", "anonymous"))
    keys = names.PARTITION_KEYS
    for dataset, count in ((names.PREDICTIONS, 3), (names.FEEDBACK, 1)):
        partitioning = ds.partitioning(
            pa.schema([(k, pa.string()) for k in keys[dataset]]), flavor="hive"
        )
        table = ds.dataset(tmp_path / dataset, partitioning=partitioning).to_table()
        assert table.num_rows == count
        assert set(table.column("date").to_pylist()) == {"2026-11-18"}
    feedback = pq.read_table(files(tmp_path / names.FEEDBACK)[0])
    assert tuple(feedback.column_names) == names.FEEDBACK_COLUMNS
    assert feedback.schema.field("time").type == pa.timestamp("ms", tz="UTC")
    assert feedback.to_pylist()[0]["who"] == "anonymous"


def test_excluded_features_are_never_written(tmp_path: Path, log_counter: LabelledCounter) -> None:
    with written_log(tmp_path, log_counter, exclude=frozenset({"email", "plan type"})) as log:
        log.add_predictions([prediction(0, RECORDS[0])])
    (path,) = files(tmp_path)  # one row: one file
    inputs = pq.read_table(path).schema.field("inputs").type
    assert [inputs.field(i).name for i in range(inputs.num_fields)] == [
        "alcohol",
        "rooms",
        "paperless billing",
    ]
    assert b"a@b" not in path.read_bytes() and b"basic" not in path.read_bytes()


def test_every_feature_excluded_still_writes_the_rows(
    tmp_path: Path, log_counter: LabelledCounter
) -> None:
    with written_log(tmp_path, log_counter, exclude=frozenset(FEATURES)) as log:
        log.add_predictions([prediction(0, RECORDS[0])])
    (path,) = files(tmp_path)
    table = pq.read_table(path)
    assert table.num_rows == 1
    assert b"a@b" not in path.read_bytes()


def test_sampling_keeps_a_share_and_the_feedback_of_what_it_kept(
    tmp_path: Path, log_counter: LabelledCounter
) -> None:
    ids = [f"p1.body{i}.sig{i}" for i in range(2000)]
    kept = [i for i in ids if keeps(i, 0.25)]
    assert 400 < len(kept) < 600
    assert kept == [i for i in ids if keeps(i, 0.25)]  # the same choice every time
    assert all(keeps(i, 1.0) for i in ids) and not any(keeps(i, 0.0) for i in ids)
    with written_log(tmp_path, log_counter, sample=0.25, batch_rows=5000) as log:
        log.add_predictions([prediction(0, RECORDS[0])._replace(prediction_id=i) for i in ids])
        for i in ids[:100]:
            log.add_feedback(FeedbackRow(i, T0, "no", "yes", "3", "anonymous"))
    assert log_counter.value("predictions", "written") == len(kept)
    assert log_counter.value("predictions", "sampled_out") == 2000 - len(kept)
    written = ds.dataset(tmp_path / names.PREDICTIONS, format="parquet").to_table()
    assert sorted(written.column("prediction_id").to_pylist()) == sorted(kept)
    feedback = ds.dataset(tmp_path / names.FEEDBACK, format="parquet").to_table()
    assert sorted(feedback.column("prediction_id").to_pylist()) == sorted(
        set(kept) & set(ids[:100])
    )


def test_a_write_that_fails_for_real_is_counted_not_raised(
    tmp_path: Path, log_counter: LabelledCounter
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the log's folder should go")
    with written_log(blocked, log_counter) as log:
        log.add_predictions([prediction(i, RECORDS[0]) for i in range(3)])
        log.add_feedback(FeedbackRow("p1.x.y", T0, "no", "yes", "3", "anonymous"))
    assert log_counter.value("predictions", "failed") == 3
    assert log_counter.value("feedback", "failed") == 1
    assert log_counter.value("predictions", "written") == 0


def test_no_temporary_file_is_left_behind(tmp_path: Path, log_counter: LabelledCounter) -> None:
    with written_log(tmp_path, log_counter, batch_rows=2) as log:
        log.add_predictions([prediction(i, RECORDS[0]) for i in range(7)])
    assert all(not p.name.startswith(".") for p in files(tmp_path))
    assert log_counter.value("predictions", "written") == 7


# --- names, settings, identity ---


def test_partition_paths_and_file_names() -> None:
    assert partition_dir(names.PREDICTIONS, "2026-11-30", "12") == (
        "predictions/date=2026-11-30/model_version=12"
    )
    assert partition_dir(names.PREDICTIONS, "2026-11-30", "a/b") == (
        "predictions/date=2026-11-30/model_version=a%2Fb"
    )
    assert partition_dir(names.FEEDBACK, "2026-11-30") == "feedback/date=2026-11-30"
    with pytest.raises(ValueError, match="model version"):
        partition_dir(names.PREDICTIONS, "2026-11-30")
    assert part_name(41, T0, "abcd") == "part-41-20261118T110640123Z-abcd.parquet"


def test_the_location_setting() -> None:
    assert parse_location("V", "") is None
    assert parse_location("V", " OFF ") is None
    assert parse_location("V", "s3://bucket/some/prefix/") == LogLocation(
        "s3", "bucket/some/prefix"
    )
    assert parse_location("V", "prod", base="/srv") == LogLocation("file", "/srv/prod")
    assert LogLocation("s3", "b/p").join("predictions", "x") == "b/p/predictions/x"
    assert LogLocation("file", "/").join("feedback") == "/feedback"
    for bad in ("s3://", "s3:///bucket", "gs://bucket/x"):
        with pytest.raises(ValueError, match=r"^V must"):
            parse_location("V", bad)


def test_service_settings_default_off_and_refuse_bad_values() -> None:
    default = production_log_settings({})
    assert default.location is None
    assert (default.sample, default.queue_rows, default.batch_rows) == (1.0, 10_000, 200)
    on = production_log_settings(
        {
            "CEPAGE_PREDICTION_LOG": "s3://logs/cepage",
            "CEPAGE_PREDICTION_LOG_S3_ENDPOINT": "https://s3.fr-par.scw.cloud/",
            "CEPAGE_PREDICTION_LOG_S3_REGION": "fr-par",
            "CEPAGE_PREDICTION_LOG_SAMPLE": "0.1",
            "CEPAGE_PREDICTION_LOG_EXCLUDE": " email, phone number ,,",
        }
    )
    assert on.location == LogLocation("s3", "logs/cepage")
    assert on.s3_endpoint == "https://s3.fr-par.scw.cloud"
    assert on.s3_region == "fr-par"
    assert on.exclude == frozenset({"email", "phone number"})
    for name, value in (
        ("CEPAGE_PREDICTION_LOG_SAMPLE", "1.5"),
        ("CEPAGE_PREDICTION_LOG_SAMPLE", "-0.1"),
        ("CEPAGE_PREDICTION_LOG_S3_ENDPOINT", "s3.fr-par.scw.cloud"),
        ("CEPAGE_PREDICTION_LOG_S3_ENDPOINT", "ftp://host"),
        ("CEPAGE_PREDICTION_LOG_QUEUE_ROWS", "0"),
        ("CEPAGE_PREDICTION_LOG_BATCH_ROWS", "many"),
        ("CEPAGE_PREDICTION_LOG_FLUSH_SECONDS", "0"),
        ("CEPAGE_PREDICTION_LOG", "s3://"),
    ):
        with pytest.raises(ValueError, match=rf"^{name} must"):
            production_log_settings({name: value})


def test_the_caller_of_a_feedback_is_a_fingerprint_of_the_key() -> None:
    assert caller_identity(None) == "anonymous"
    who = caller_identity("correct horse battery staple")
    assert who.startswith("key:") and len(who) == 16
    assert "horse" not in who
    assert who == caller_identity("correct horse battery staple")
    assert who != caller_identity("another key")


# A fresh interpreter, as a worker whose log is off: pyarrow hidden before anything imports pandas,
# then a mixed-data model (categories, blanks) trained and scored as the service does.
WITHOUT_ARROW = """
import json, sys
from pathlib import Path
from bento.production_log import keep_arrow_unloaded
hidden = keep_arrow_unloaded()
from tests.support.mixed_data import linear_probabilities
rows = linear_probabilities(Path(sys.argv[1]), json.loads(sys.argv[2]))
print(json.dumps({"hidden": hidden, "arrow": sys.modules.get("pyarrow") is not None,
                  "probabilities": rows}))
"""


def in_fresh_interpreter(script: str, *args: str) -> str:
    """The last line ``script`` prints, run by a new Python from the repository root."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_worker_without_a_log_never_loads_arrow_and_scores_the_same(tmp_path: Path) -> None:
    data = tmp_path / "customers.csv"
    customers().to_csv(data, index=False)
    records = [api_record(i) for i in range(20)]
    answer = json.loads(in_fresh_interpreter(WITHOUT_ARROW, str(data), json.dumps(records)))
    assert answer["hidden"] and not answer["arrow"]
    # The same model trained and scored here, where pandas has pyarrow.
    expected = linear_probabilities(data, records)
    assert len(answer["probabilities"]) == len(expected) == len(records)
    for got, want in zip(answer["probabilities"], expected, strict=True):
        assert got == pytest.approx(want, rel=1e-9)


def test_importing_the_service_leaves_pandas_out_so_arrow_can_be_hidden() -> None:
    # keep_arrow_unloaded() works only before pandas is imported: a module-level import of
    # pandas or scikit-learn in bento/ would quietly bring Arrow back into every worker.
    script = "import sys, bento.service; print('pandas' in sys.modules)"
    assert in_fresh_interpreter(script) == "False"
