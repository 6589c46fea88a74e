"""What production saw and was told: the service's prediction and feedback logs, read back and
joined into labelled rows a model can learn from.

The service writes two Parquet datasets (``contracts/production_log.py``: layout and names); this
module reads them, locally or on S3 through ``pyarrow.fs`` as the service writes them, and joins
each feedback label to its prediction's inputs. Rows that cannot be training data are reported
with the reason, never silently dropped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from contracts import production_log as names
from contracts.features import BLANK_MARKERS, CATEGORY, canonical_category, kind, nullable
from contracts.production_log import LogLocation, VersionCounts, parse_location
from train.errors import StepError

# Columns added to the joined rows beside the features and the label: where each row comes from.
ROW_TIME = "_time"
ROW_ID = "_prediction_id"
ROW_VERSION = "_model_version"
REASON = "reason"


class ProductionLogError(StepError):
    """The production log cannot be read or cannot give training rows; one sentence why."""


@dataclass(frozen=True)
class Labelled:
    """Labelled production rows and what was left out of them.

    ``rows`` holds the features (model form, schema order), the target column, and the
    ``_time``, ``_prediction_id``, ``_model_version`` columns; oldest first.
    ``rejected`` holds the rows that could not be used and a ``reason`` column.
    """

    rows: pd.DataFrame
    rejected: pd.DataFrame
    predictions: int
    feedback: int
    duplicate_feedback: int
    unmatched_feedback: int


def location_from(text: str, environ: Mapping[str, str] | None = None) -> LogLocation:
    """The log's location from a setting's value (a directory or ``s3://bucket/prefix``)."""
    try:
        location = parse_location("CEPAGE_PREDICTION_LOG", text)
    except ValueError as exc:
        raise ProductionLogError(str(exc)) from exc
    if location is None:
        raise ProductionLogError(
            "The production log is off (CEPAGE_PREDICTION_LOG=off): there are no production "
            "rows to read; point CEPAGE_PREDICTION_LOG (or --log) at where the service writes it."
        )
    return location


def filesystem(location: LogLocation, environ: Mapping[str, str] | None = None) -> Any:
    """A ``pyarrow.fs`` filesystem for ``location``, configured like the service's writer
    (``CEPAGE_PREDICTION_LOG_S3_ENDPOINT``, ``..._S3_REGION``; credentials from
    ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``)."""
    from pyarrow import fs

    environ = os.environ if environ is None else environ
    if not location.is_s3:
        return fs.LocalFileSystem()
    options: dict[str, Any] = {"connect_timeout": 5.0, "request_timeout": 30.0}
    endpoint = environ.get("CEPAGE_PREDICTION_LOG_S3_ENDPOINT", "").strip()
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme)
    region = environ.get("CEPAGE_PREDICTION_LOG_S3_REGION", "").strip()
    if region:
        options["region"] = region
    return fs.S3FileSystem(**options)


def _files(location: LogLocation, dataset: str, since_day: str | None, environ: Any) -> list[str]:
    """The dataset's Parquet files (not the writers' hidden temporary ones), optionally only
    those of ``date`` partitions from ``since_day`` on."""
    from pyarrow import fs as pafs

    filesystem_ = filesystem(location, environ)
    root = location.join(dataset)
    try:
        selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
        infos = filesystem_.get_file_info(selector)
    except OSError as exc:
        raise ProductionLogError(f"Cannot list the production log at {location}: {exc}") from exc
    found = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.base_name.endswith(names.PART_SUFFIX):
            continue
        if info.base_name.startswith("."):
            continue
        day = _partition_value(info.path, names.DATE)
        if since_day is not None and day is not None and day < since_day:
            continue
        found.append(info.path)
    return sorted(found)


def _partition_value(path: str, key: str) -> str | None:
    for part in path.split("/"):
        if part.startswith(f"{key}="):
            return part.split("=", 1)[1]
    return None


def _read(location: LogLocation, paths: Sequence[str], environ: Any) -> pd.DataFrame:
    """The files as one frame; the ``inputs`` struct flattened into ``inputs.<feature>``
    columns (each file's own: versions may have different features)."""
    import pyarrow.parquet as pq

    filesystem_ = filesystem(location, environ)
    frames = []
    for path in paths:
        try:
            table = pq.read_table(path, filesystem=filesystem_, partitioning=None)
        except OSError as exc:
            raise ProductionLogError(f"Cannot read {path} of the production log: {exc}") from exc
        frames.append(table.flatten().to_pandas())
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_labelled(
    location: LogLocation,
    features: Sequence[Mapping[str, Any]],
    target: str,
    *,
    since_day: str | None = None,
    predictions_since_day: str | None = None,
    trusted: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Labelled:
    """Join the feedback labels to their predictions, in the form of training data for a model
    with these ``features`` (the feature schema's records) predicting ``target``.

    ``since_day`` keeps the labels given from that day on; their predictions are read from
    ``predictions_since_day`` (a label comes up to the ids' lifetime after its prediction).
    ``trusted``: when given, only labels sent by these callers (the feedback's ``who``) can become
    training rows; the others are rejected with the reason.
    Each prediction id keeps its latest label (the service refuses a second label per worker;
    with several workers the later one wins, as documented in contracts/production_log.py).
    """
    environ = os.environ if environ is None else environ
    predictions = _read(
        location, _files(location, names.PREDICTIONS, predictions_since_day, environ), environ
    )
    feedback = _read(location, _files(location, names.FEEDBACK, since_day, environ), environ)
    if predictions.empty or feedback.empty:
        return Labelled(
            _empty(features, target), pd.DataFrame(), len(predictions), len(feedback), 0,
            len(feedback),
        )  # fmt: skip

    feedback = feedback.sort_values(names.TIME, kind="stable")
    latest = feedback.drop_duplicates(names.PREDICTION_ID, keep="last")
    duplicates = len(feedback) - len(latest)
    predictions = predictions.drop_duplicates(names.PREDICTION_ID, keep="last")
    joined = latest[[names.PREDICTION_ID, names.TIME, names.LABEL, names.WHO]].merge(
        predictions, on=names.PREDICTION_ID, how="left", suffixes=("_feedback", ""),
        indicator=True,
    )  # fmt: skip
    unmatched = int((joined["_merge"] == "left_only").sum())
    joined = joined[joined["_merge"] == "both"]

    rows, rejected = _as_training_rows(joined, features, target, trusted)
    return Labelled(rows, rejected, len(predictions), len(feedback), duplicates, unmatched)


def _empty(features: Sequence[Mapping[str, Any]], target: str) -> pd.DataFrame:
    names_ = [*(f["name"] for f in features), target, ROW_TIME, ROW_ID, ROW_VERSION]
    return pd.DataFrame(columns=names_)


def _as_training_rows(
    joined: pd.DataFrame,
    features: Sequence[Mapping[str, Any]],
    target: str,
    trusted: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the rows that hold every feature the model needs, labelled by a trusted caller;
    the others go to ``rejected`` with the reason."""
    columns = {f["name"]: f"{names.INPUTS}.{f['name']}" for f in features}
    frame = pd.DataFrame(index=joined.index)
    reasons = pd.Series("", index=joined.index, dtype=object)
    if trusted:
        who = joined[names.WHO].fillna("")
        reasons = reasons.mask(
            ~who.isin(list(trusted)),
            "labelled by " + who + ", not a trusted source (CEPAGE_DATASET_FEEDBACK_FROM)",
        )
    for feature in features:
        name = feature["name"]
        source = columns[name]
        if source not in joined.columns:
            values = pd.Series(None, index=joined.index, dtype=object)
            reasons = reasons.where(reasons != "", f"{name} is not in the log")
        else:
            values = joined[source]
        missing = values.isna()
        if kind(feature) == CATEGORY:
            # A category written as "NA", "None", "null"... reads back from CSV as a blank, like
            # every blank marker of the training data: it cannot be kept as the category it is.
            blankish = values.map(lambda v: isinstance(v, str) and v.strip() in BLANK_MARKERS)
            reasons = reasons.mask(
                (reasons == "") & blankish,
                f"{name}'s value reads as a blank in a CSV (one of pandas' missing markers)",
            )
        if not nullable(feature):
            reasons = reasons.mask(
                (reasons == "") & missing,
                f"{name} is missing (not nullable); excluded by CEPAGE_PREDICTION_LOG_EXCLUDE, "
                "or logged by a version without it",
            )
        frame[name] = values
    frame[target] = joined[f"{names.LABEL}_feedback"].map(canonical_category)
    frame[ROW_TIME] = joined[f"{names.TIME}_feedback"]
    frame[ROW_ID] = joined[names.PREDICTION_ID]
    frame[ROW_VERSION] = joined[names.MODEL_VERSION]
    bad = reasons != ""
    rejected = frame[bad].copy()
    rejected[REASON] = reasons[bad]
    rows = frame[~bad].sort_values(ROW_TIME, kind="stable").reset_index(drop=True)
    return rows, rejected.reset_index(drop=True)


def summarize(
    location: LogLocation,
    *,
    since_day: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[VersionCounts]:
    """Per model version: predictions kept, how many got a label, and how many were right."""
    environ = os.environ if environ is None else environ
    predictions = _read(location, _files(location, names.PREDICTIONS, since_day, environ), environ)
    feedback = _read(location, _files(location, names.FEEDBACK, since_day, environ), environ)
    if predictions.empty:
        return []
    counts = predictions.groupby(names.MODEL_VERSION)[names.PREDICTION_ID].nunique()
    labelled: dict[str, tuple[int, int]] = {}
    if not feedback.empty:
        latest = feedback.sort_values(names.TIME, kind="stable").drop_duplicates(
            names.PREDICTION_ID, keep="last"
        )
        latest = latest[latest[names.PREDICTION_ID].isin(predictions[names.PREDICTION_ID])]
        right = latest[names.LABEL] == latest[names.PREDICTED]
        for version, group in right.groupby(latest[names.MODEL_VERSION]):
            labelled[str(version)] = (len(group), int(group.sum()))
    return [
        VersionCounts(str(version), int(count), *labelled.get(str(version), (0, 0)))
        for version, count in sorted(counts.items(), key=lambda item: _version_key(str(item[0])))
    ]


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


def read_rows(
    location: LogLocation,
    dataset: str,
    *,
    since_day: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One dataset of the log (``predictions`` or ``feedback``) as written, from the ``date``
    partition ``since_day`` on; ``inputs`` flattened into ``inputs.<feature>`` columns. The drift
    report (train/drift_report.py) reads the window's rows with it."""
    environ = os.environ if environ is None else environ
    return _read(location, _files(location, dataset, since_day, environ), environ)
