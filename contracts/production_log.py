"""The production log's layout: what the service writes (``bento/production_log.py``) and a
reader (the training side's dataset builder) reads, one home for each name.

Parquet datasets under one root (``CEPAGE_PREDICTION_LOG``: a directory or
``s3://bucket/prefix``), partitioned Hive-style::

    <root>/predictions/date=YYYY-MM-DD/model_version=V/part-<pid>-<utc stamp>-<random>.parquet
    <root>/feedback/date=YYYY-MM-DD/part-<pid>-<utc stamp>-<random>.parquet
    <root>/shadow/date=YYYY-MM-DD/model_version=V/part-<pid>-<utc stamp>-<random>.parquet

``shadow`` holds what the shadow challenger (``bento/shadow.py``) answered to the same records,
one row per prediction it scored: ``model_version`` and ``label`` are the challenger's, beside
the champion's (``champion_version``, ``champion_label``).

``date`` is the UTC day of the rows' ``time``. Partition values are strings: read them as such
(``pyarrow.dataset.partitioning(pyarrow.schema([(k, pyarrow.string()) for k in
PARTITION_KEYS[dataset]]), flavor="hive")``), since ``model_version`` is also a column of the
files and a guessed integer type would clash with it. Files are complete or absent (written
under a hidden temporary name, then renamed; one PUT on S3); a name starting with ``.`` is such
a temporary file and is not part of the dataset.

Feedback is refused twice for one id by one worker only: with several workers or replicas the
feedback dataset may hold more than one row per ``prediction_id``: the latest ``time`` wins (a
reader de-duplicates by ``prediction_id``, keeping that row). Standard library only: this module
is copied into every image.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

# The setting's value that turns the log off (unset or empty is off too in the bare service).
OFF: Final = "off"
S3_SCHEME: Final = "s3://"

PREDICTIONS: Final = "predictions"
FEEDBACK: Final = "feedback"
SHADOW: Final = "shadow"
DATASETS: Final = (PREDICTIONS, FEEDBACK, SHADOW)

DATE: Final = "date"
MODEL_VERSION: Final = "model_version"
PARTITION_KEYS: Final[dict[str, tuple[str, ...]]] = {
    PREDICTIONS: (DATE, MODEL_VERSION),
    FEEDBACK: (DATE,),
    SHADOW: (DATE, MODEL_VERSION),
}

# Columns. `time` is timestamp[ms, UTC]; `probabilities` map<string, double>; `out_of_range`
# list<string>; `inputs` a struct of the served model's features (number/integer: double,
# boolean: bool, category: string; all nullable), without the excluded ones.
PREDICTION_ID: Final = "prediction_id"
TIME: Final = "time"
MODEL_NAME: Final = "model_name"
LABEL: Final = "label"
PROBABILITIES: Final = "probabilities"
OUT_OF_RANGE: Final = "out_of_range"
INPUTS: Final = "inputs"
PREDICTED: Final = "predicted"
WHO: Final = "who"
PREDICTION_COLUMNS: Final = (
    PREDICTION_ID,
    TIME,
    MODEL_NAME,
    MODEL_VERSION,
    LABEL,
    PROBABILITIES,
    OUT_OF_RANGE,
    INPUTS,
)
# `label` is the true class the caller gave, `predicted` what the id says the model answered.
FEEDBACK_COLUMNS: Final = (PREDICTION_ID, TIME, LABEL, PREDICTED, MODEL_VERSION, WHO)
CHAMPION_VERSION: Final = "champion_version"
CHAMPION_LABEL: Final = "champion_label"
SHADOW_COLUMNS: Final = (
    PREDICTION_ID,
    TIME,
    MODEL_NAME,
    MODEL_VERSION,
    LABEL,
    PROBABILITIES,
    CHAMPION_VERSION,
    CHAMPION_LABEL,
)
# The caller of a feedback when the service has no API key.
ANONYMOUS: Final = "anonymous"

PART_SUFFIX: Final = ".parquet"


@dataclass(frozen=True)
class LogLocation:
    """Where the log lives: ``scheme`` ``file`` (``path`` an absolute directory) or ``s3``
    (``path`` is ``bucket`` or ``bucket/prefix``, no trailing slash)."""

    scheme: str
    path: str

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.path}" if self.is_s3 else self.path

    def join(self, *parts: str) -> str:
        """A path under the root, as ``pyarrow.fs`` takes it (``bucket/prefix/...`` on S3)."""
        return "/".join((self.path.rstrip("/") or "/", *parts)).replace("//", "/")


def parse_location(name: str, text: str, base: str | None = None) -> LogLocation | None:
    """The setting ``name``'s value as a location; None for ``off`` (or empty).

    A relative directory is taken from ``base`` (default: the current directory).

    Raises:
        ValueError: an ``s3://`` value without a bucket; one sentence naming ``name``.
    """
    value = text.strip()
    if not value or value.lower() == OFF:
        return None
    if value.startswith(S3_SCHEME):
        path = value[len(S3_SCHEME) :].rstrip("/")
        if not path or path.startswith("/") or "//" in path:
            raise ValueError(
                f"{name} must name a bucket, as s3://bucket or s3://bucket/prefix, not {text!r}."
            )
        return LogLocation("s3", path)
    if "://" in value:
        raise ValueError(f"{name} must be a directory, s3://bucket/prefix or off, not {text!r}.")
    return LogLocation("file", os.path.abspath(os.path.join(base or os.getcwd(), value)))


def partition_dir(dataset: str, day: str, model_version: str | None = None) -> str:
    """The folder of one partition, relative to the root: ``predictions/date=2026-11-30/
    model_version=3`` or ``feedback/date=2026-11-30``. Values are URI-escaped (pyarrow's Hive
    partitioning decodes them)."""
    keys = PARTITION_KEYS[dataset]
    if len(keys) == 2 and model_version is None:
        raise ValueError(f"the {dataset} dataset is partitioned by {keys}: give a model version")
    values = (day, model_version)[: len(keys)]
    parts = (f"{k}={quote(str(v), safe='')}" for k, v in zip(keys, values, strict=True))
    return "/".join((dataset, *parts))


def utc_day(epoch_seconds: float) -> str:
    """The partition date (UTC) of a row written at ``epoch_seconds``."""
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_seconds))


def part_name(pid: int, epoch_seconds: float, token: str) -> str:
    """A file's name: ``part-<pid>-<YYYYmmddTHHMMSSmmmZ>-<token>.parquet`` (unique per writer:
    the process id, the time to the millisecond and a random token)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(epoch_seconds))
    millis = int(epoch_seconds * 1000) % 1000
    return f"part-{pid}-{stamp}{millis:03d}Z-{token}{PART_SUFFIX}"


@dataclass(frozen=True)
class VersionCounts:
    """What one model version answered and was told: predictions, how many got feedback, how
    many of those said the answer was right. ``cepage production`` counts them from the log, the
    UI from the service's counters."""

    model_version: str
    predictions: int
    labelled: int
    correct: int

    @property
    def labelled_share(self) -> float:
        return self.labelled / self.predictions if self.predictions else 0.0

    @property
    def accuracy(self) -> float | None:
        """The share of labelled predictions that were right (None: no label yet)."""
        return self.correct / self.labelled if self.labelled else None
