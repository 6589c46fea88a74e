"""The model card of a registered version, built from what MLflow recorded and stored with it.

Everything comes from the registry and the version's training run: the version's tags (the
gate's decision and scores, the promoted file's digest) and aliases, the run's parameters,
metrics, dataset inputs and tags, its feature schema, and its held-out rows, on which the
version's own model file (read safely, as the gate reads it) gives the per-class figures and the
confusion matrix. The user's "intended use and limits" comes from the repository
(``docs/intended-use.md``). The document's fields are described in ``contracts/model_card.py``.

Packaging (``train/package.py``) makes the card of the version it imports and carries it into
the BentoML model; ``cepage registry model-card`` makes it for any version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from contracts.features import BOOLEAN, CATEGORY, NUMERIC_KINDS, canonical_category, kind
from contracts.model_card import (
    CARD_JSON_ARTIFACT,
    CARD_MARKDOWN_ARTIFACT,
    CARD_VERSION,
    INTENDED_USE_PATH,
    render_markdown,
)
from contracts.names import (
    GATE_CANDIDATE_F1_TAG,
    GATE_CHAMPION_F1_TAG,
    GATE_DECISION_TAG,
    GATE_PRODUCTION_CANDIDATE_F1_TAG,
    GATE_PRODUCTION_CHAMPION_F1_TAG,
    GATE_PRODUCTION_ROWS_TAG,
    GATE_REASON_TAG,
    MODEL_DIGEST_TAG,
    TARGET_TAG,
)
from train.artifacts import digest, download, feature_list, load_estimator, model_file
from train.gate import Judged, load_holdout
from train.schema import model_frame
from train.tracking import StoreError
from train.training import SCHEMA_ARTIFACT, TRAINING_DATA_ARTIFACT

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Overall metrics a card quotes as training logged them (per-class ones are recomputed in full).
OVERALL_METRICS = ("accuracy", "f1_macro", "log_loss")


@dataclass(frozen=True)
class ModelCard:
    """A version's card in both forms."""

    document: dict[str, Any]
    markdown: str


def build_card(client: MlflowClient, name: str, version: str, project_dir: Path) -> ModelCard:
    """Gather the card of ``name`` version ``version`` (nothing is written).

    Raises:
        StoreError: the version's run lacks what `cepage train` records (target, schema,
            held-out rows), or its model file cannot be read.
    """
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_model_version(name, version)
    except MlflowException as exc:
        raise StoreError(f"{name} has no version {version!r} in the registry.") from exc
    run = client.get_run(str(registered.run_id))
    tags: dict[str, str] = dict(registered.tags or {})
    target = run.data.tags.get(TARGET_TAG)
    if not target:
        raise StoreError(f"Version {version} was not logged by `cepage train` (no {TARGET_TAG}).")
    schema = _schema(client, str(registered.run_id))
    document = {
        "card_version": CARD_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {
            "name": name,
            "version": str(version),
            "run_id": str(registered.run_id),
            "created_at": _time(registered.creation_timestamp),
            "aliases": sorted(getattr(registered, "aliases", None) or []),
            "estimator": run.data.params.get("model"),
            "model_sha256": tags.get(MODEL_DIGEST_TAG),
        },
        "data": _data(client, run, schema, target),
        "features": [_feature(f) for f in schema["features"]],
        "metrics": _metrics(client, name, str(version), run, target, tags.get(MODEL_DIGEST_TAG)),
        "gate": _gate(tags),
        "training": {"params": dict(sorted(run.data.params.items()))},
        "intended_use": _intended_use(project_dir),
    }
    return ModelCard(document, render_markdown(document))


def store_card(client: MlflowClient, run_id: str, card: ModelCard) -> None:
    """Write both forms as artifacts of the version's run (a newer card replaces the older)."""
    client.log_text(run_id, card.markdown, CARD_MARKDOWN_ARTIFACT)
    client.log_text(run_id, json.dumps(card.document, indent=2) + "\n", CARD_JSON_ARTIFACT)


def _schema(client: MlflowClient, run_id: str) -> dict[str, Any]:
    import mlflow

    names = {f.path for f in client.list_artifacts(run_id)}
    if SCHEMA_ARTIFACT not in names:
        raise StoreError(f"Run {run_id} has no feature schema ({SCHEMA_ARTIFACT}).")
    schema: dict[str, Any] = mlflow.artifacts.load_dict(f"runs:/{run_id}/{SCHEMA_ARTIFACT}")
    return schema


def _data(client: MlflowClient, run: Any, schema: dict[str, Any], target: str) -> dict[str, Any]:
    inputs = {_context(entry): entry.dataset for entry in getattr(run.inputs, "dataset_inputs", [])}
    training, held_out = inputs.get("training"), inputs.get("testing")
    stored = _stored_rows(client, run.info.run_id, target)
    return {
        "name": run.data.tags.get("cepage.dataset"),
        "source": _source(training),
        "target": target,
        "classes": [str(c) for c in schema.get("classes", [])],
        "rows": {"training": _rows(training), "held_out": _rows(held_out)},
        "class_counts": None if stored is None else stored[1],
        "training_digest": None if training is None else training.digest,
        "held_out_digest": None if held_out is None else held_out.digest,
        "stored_rows_sha256": None if stored is None else stored[0],
        "snapshot": {
            k: v for k, v in sorted(run.data.tags.items()) if k.startswith("cepage.dataset.")
        },
    }


def _context(entry: Any) -> str:
    return next((t.value for t in entry.tags if t.key == "mlflow.data.context"), "")


def _source(dataset: Any) -> str | None:
    if dataset is None:
        return None
    try:
        source = json.loads(dataset.source)
    except ValueError:
        return str(dataset.source)
    # A local file's URI, or the code that loaded the data (the wine demo: under "tags").
    if not isinstance(source, dict):
        return str(dataset.source)
    tags = source.get("tags")
    loader = tags.get("loader") if isinstance(tags, dict) else None
    return str(source.get("uri") or loader or dataset.source)


def _rows(dataset: Any) -> int | None:
    try:
        return int(json.loads(dataset.profile)["num_rows"])
    except (AttributeError, TypeError, ValueError, KeyError):
        return None


def _stored_rows(
    client: MlflowClient, run_id: str, target: str
) -> tuple[str, dict[str, int]] | None:
    """SHA-256 of the rows the run stored, and the rows per class (None: none stored)."""
    import mlflow

    folder = TRAINING_DATA_ARTIFACT.rsplit("/", 1)[0]
    if TRAINING_DATA_ARTIFACT not in {f.path for f in client.list_artifacts(run_id, folder)}:
        return None
    path = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{TRAINING_DATA_ARTIFACT}"))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    labels = pd.read_csv(path, usecols=[target], dtype=str)[target].map(canonical_category)
    counts = labels.value_counts()
    return sha, {str(label): int(count) for label, count in counts.sort_index().items()}


def _feature(feature: dict[str, Any]) -> dict[str, Any]:
    which = kind(feature)
    entry: dict[str, Any] = {
        "name": feature["name"],
        "kind": which,
        "nullable": bool(feature.get("nullable", False)),
        "missing_share": float(feature.get("missing_share") or 0.0),
    }
    if which in NUMERIC_KINDS:
        entry.update(min=feature.get("min"), median=feature.get("median"), max=feature.get("max"))
    elif which == BOOLEAN:
        entry["true_share"] = feature.get("true_share")
    elif which == CATEGORY:
        entry["categories"] = list(feature.get("categories", []))
    return entry


def _metrics(
    client: MlflowClient, name: str, version: str, run: Any, target: str, recorded: str | None
) -> dict[str, Any]:
    """Training's logged overall metrics, and per class and confusion matrix recomputed by the
    version's own model on the run's held-out rows (its file checked against the digest the gate
    recorded before it is read: the card must not run another file than the one judged)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    holdout = load_holdout(client, run.info.run_id)
    overall = {k: float(run.data.metrics[k]) for k in OVERALL_METRICS if k in run.data.metrics}
    if holdout is None:
        return {"overall": overall, "per_class": None, "confusion_matrix": None,
                "held_out_rows": None}  # fmt: skip
    judged = _read_checked(name, version, recorded)
    model = judged.estimator
    columns = list(getattr(model, "feature_names_in_", []))
    if judged.features is not None:
        features = model_frame(holdout, judged.features)
        features = features[columns] if columns else features
    else:
        features = holdout[columns].astype("float64")
    truth = holdout[target].map(canonical_category)
    predicted = model.predict(features)
    classes = [str(c) for c in model.classes_]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    matrix = confusion_matrix(truth, predicted, labels=classes)
    return {
        "overall": overall,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(classes)
        },
        "confusion_matrix": {"labels": classes, "counts": matrix.astype(int).tolist()},
        "held_out_rows": len(holdout),
    }


def _read_checked(name: str, version: str, recorded: str | None) -> Judged:
    """The version's model, loaded only once its file has the recorded digest (when one is)."""
    model_dir = download(f"models:/{name}/{version}")
    path = model_file(model_dir)
    found = digest(path)
    if recorded and found != recorded:
        raise StoreError(
            f"The model file of version {version} is not the one promoted (SHA-256 {found[:12]}…, "
            f"recorded {recorded[:12]}…): nothing was packaged. Check who wrote to the registry."
        )
    return Judged(load_estimator(path), found, feature_list(model_dir))


def _gate(tags: dict[str, str]) -> dict[str, Any]:
    decision = {"true": "promoted", "false": "rejected"}.get(tags.get(GATE_DECISION_TAG, ""))
    rows = tags.get(GATE_PRODUCTION_ROWS_TAG)
    return {
        "decision": decision,
        "reason": tags.get(GATE_REASON_TAG),
        "candidate_f1": _float(tags.get(GATE_CANDIDATE_F1_TAG)),
        "champion_f1": _float(tags.get(GATE_CHAMPION_F1_TAG)),
        "production_rows": int(rows) if rows else None,
        "candidate_production_f1": _float(tags.get(GATE_PRODUCTION_CANDIDATE_F1_TAG)),
        "champion_production_f1": _float(tags.get(GATE_PRODUCTION_CHAMPION_F1_TAG)),
    }


def _intended_use(project_dir: Path) -> dict[str, Any]:
    path = project_dir / INTENDED_USE_PATH
    if not path.is_file():
        return {"path": INTENDED_USE_PATH, "sha256": None, "markdown": None}
    raw = path.read_bytes()
    # The file's HTML comments are notes to whoever edits it, not part of the card.
    text = _COMMENT.sub("", raw.decode("utf-8")).strip()
    return {
        "path": INTENDED_USE_PATH,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "markdown": text or None,
    }


_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def _time(millis: int | None) -> str | None:
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")
