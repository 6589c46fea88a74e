"""Training sets built from the original data plus what production was told: ``cepage dataset``.

A snapshot joins the champion's training data (stored with its MLflow run, or a CSV given) and the
labelled production rows (train/production.py), and is written once under a name made of its
content's digest, so the same inputs give the same snapshot and a run that trained on it names
exactly what it saw. The newest labelled production rows are held out of it: the gate judges the
candidate and the champion on them (train/gate.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.features import CATEGORY, kind
from contracts.names import CHAMPION, TARGET_TAG
from train.artifacts import download, feature_list
from train.errors import StepError
from train.production import REASON, ROW_ID, ROW_TIME, ROW_VERSION, location_from, read_labelled
from train.registry import get_alias
from train.settings import Settings
from train.tracking import connect
from train.training import TRAINING_DATA_ARTIFACT

# The share of the labelled production rows, newest first, kept out of the training set for the
# gate; and the fewest rows that make the gate's production check worth its noise (below it the
# rows all go to training and the gate judges on the usual held-out rows only).
PRODUCTION_HOLDOUT_SHARE = 0.3
MANIFEST = "manifest.json"
HOLDOUT_FILE = "production-holdout.csv"
REJECTED_FILE = "rejected.csv"
# On a run trained on a snapshot: where its rows before production came from, and those rows.
ORIGINAL_SOURCE_TAG = "cepage.dataset.original_source"
ORIGINAL_FILE = "original.csv"
ORIGINAL_ARTIFACT = f"dataset/{ORIGINAL_FILE}"


class DatasetError(StepError):
    """No training set can be built; one sentence why."""


@dataclass(frozen=True)
class Snapshot:
    """A training set on disk and where its rows came from."""

    directory: Path
    data: Path
    holdout: Path | None
    digest: str
    target: str
    categorical: tuple[str, ...]
    original_source: str
    original_rows: int
    production_rows: int
    holdout_rows: int
    rejected_rows: int
    log: str
    champion_version: str
    # Labels that found no prediction (older than the window, or lost with a killed worker) and
    # second labels for one prediction (the latest kept).
    unmatched_feedback: int = 0
    duplicate_feedback: int = 0

    def tags(self) -> dict[str, str]:
        """What a training run records about this snapshot (tags ``cepage.dataset.*``)."""
        return {
            "cepage.dataset.digest": self.digest,
            ORIGINAL_SOURCE_TAG: self.original_source,
            "cepage.dataset.original_rows": str(self.original_rows),
            "cepage.dataset.production_rows": str(self.production_rows),
            "cepage.dataset.production_holdout_rows": str(self.holdout_rows),
            "cepage.dataset.production_rejected_rows": str(self.rejected_rows),
            "cepage.dataset.production_log": self.log,
        }


def build(
    settings: Settings,
    *,
    data: Path | None = None,
    log: str | None = None,
    since_days: int | None = None,
    min_production_rows: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Snapshot:
    """Build (or find) the snapshot of the champion's data plus the labelled production rows.

    ``data``: the original rows (default: the champion's run's stored training data);
    ``log``: the production log (default ``CEPAGE_PREDICTION_LOG``); ``since_days``: only
    production rows from that many days back.

    Raises:
        DatasetError: no champion, no original data, or a log that cannot give rows.
    """
    client = connect(settings, create=False)
    champion = get_alias(client, settings.model_name, CHAMPION)
    if champion is None:
        raise DatasetError(
            f"{settings.model_name} has no @champion: train and promote a first model, which "
            "the production rows then add to."
        )
    run = client.get_run(str(champion.run_id))
    target = run.data.tags.get(TARGET_TAG)
    features = feature_list(download(f"models:/{settings.model_name}/{champion.version}"))
    if not target or not features:
        raise DatasetError(
            f"Version {champion.version} was not logged by `cepage train` (no target or feature "
            "schema): give the data with --data and retrain by hand first."
        )
    original, source = _original(run.info.run_id, run.data.tags, data)
    missing = [f["name"] for f in features if f["name"] not in original.columns]
    if target not in original.columns or missing:
        raise DatasetError(
            f"The original data ({source}) lacks {', '.join(missing or [target])}, which the "
            f"champion (version {champion.version}) uses."
        )

    location = location_from(log or settings.prediction_log)
    since = predictions_since = None
    if since_days is not None:
        since = _day(time.time() - since_days * 86400)
        # A label comes up to the prediction id's lifetime after its prediction.
        predictions_since = _day(time.time() - since_days * 86400 - settings.feedback_max_age)
    labelled = read_labelled(
        location, features, target, since_day=since, predictions_since_day=predictions_since,
        trusted=settings.dataset_feedback_from, environ=environ,
    )  # fmt: skip
    production = labelled.rows
    minimum = min_production_rows or settings.gate_min_production_rows
    # Held out only when the held-out part alone is enough for the gate's production check:
    # fewer rows would be withheld from training for a check that does not run.
    held = int(len(production) * PRODUCTION_HOLDOUT_SHARE)
    held = held if held >= minimum else 0
    train_rows = production.iloc[: len(production) - held] if held else production
    holdout_rows = production.iloc[len(production) - held :] if held else production.iloc[0:0]

    columns = [*(f["name"] for f in features), target]
    combined = pd.concat(
        [original[columns], _as_text(train_rows[columns], features)], ignore_index=True
    )
    text = combined.to_csv(index=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    directory = settings.home / "datasets" / digest[:16]
    snapshot = Snapshot(
        directory=directory,
        data=directory / f"production-{digest[:12]}.csv",
        holdout=directory / HOLDOUT_FILE if held else None,
        digest=digest,
        target=target,
        categorical=tuple(f["name"] for f in features if kind(f) == CATEGORY),
        original_source=source,
        original_rows=len(original),
        production_rows=len(train_rows),
        holdout_rows=held,
        rejected_rows=len(labelled.rejected),
        log=str(location),
        champion_version=str(champion.version),
        unmatched_feedback=labelled.unmatched_feedback,
        duplicate_feedback=labelled.duplicate_feedback,
    )
    _write(snapshot, text, _as_text(holdout_rows, features, keep=True), labelled.rejected)
    original[columns].to_csv(directory / ORIGINAL_FILE, index=False)
    return snapshot


def _day(epoch_seconds: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_seconds))


def _original(run_id: str, tags: Mapping[str, str], data: Path | None) -> tuple[pd.DataFrame, str]:
    """The original rows as text (as the CSV holds them) and where they come from.

    A champion that was itself trained on a snapshot already holds production rows: the base is
    then that snapshot's own original rows, stored with its run (``dataset/original.csv``), so
    that each production row is counted once however many retrains go by.
    """
    if data is not None:
        if not data.is_file():
            raise DatasetError(f"Data file {data} does not exist.")
        return pd.read_csv(data, dtype=str, keep_default_na=False), str(data)
    import mlflow

    stored = ORIGINAL_ARTIFACT if tags.get(ORIGINAL_SOURCE_TAG) else TRAINING_DATA_ARTIFACT
    uri = f"runs:/{run_id}/{stored}"
    try:
        text = mlflow.artifacts.load_text(uri)
    except Exception as exc:  # MLflow raises several types for a missing artifact
        raise DatasetError(
            f"The champion's run {run_id} has no stored training data ({TRAINING_DATA_ARTIFACT}: "
            "runs before cepage kept it): give the original CSV with --data."
        ) from exc
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False), uri


def _as_text(
    rows: pd.DataFrame, features: list[dict[str, Any]], *, keep: bool = False
) -> pd.DataFrame:
    """Production values as CSV text a training run reads back into the same kinds: booleans
    as 1/0 (train/kinds.py reads 0/1, 0.0/1.0 and yes/no alike), blanks empty; ``keep`` also
    keeps the provenance columns."""
    out = pd.DataFrame(index=rows.index)
    for column in rows.columns:
        if column in (ROW_TIME, ROW_ID, ROW_VERSION) and not keep:
            continue
        out[column] = rows[column]
    for feature in features:
        name = feature["name"]
        if name in out.columns and kind(feature) == "boolean":
            out[name] = out[name].map(lambda v: "" if pd.isna(v) else str(int(bool(v))))
    return out.where(out.notna(), "")


def _write(snapshot: Snapshot, text: str, holdout: pd.DataFrame, rejected: pd.DataFrame) -> None:
    """Write the snapshot once: an existing one with this digest is the same content."""
    directory = snapshot.directory
    directory.mkdir(parents=True, exist_ok=True)
    if not snapshot.data.exists():
        temporary = directory / f".{snapshot.data.name}.tmp"
        temporary.write_text(text)
        temporary.replace(snapshot.data)
    if snapshot.holdout is not None:
        holdout.to_csv(snapshot.holdout, index=False)
    if not rejected.empty:
        rejected.to_csv(directory / REJECTED_FILE, index=False)
    manifest = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(snapshot).items()}
    manifest["rejected_reasons"] = (
        rejected[REASON].value_counts().to_dict() if not rejected.empty else {}
    )
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=list) + "\n")
