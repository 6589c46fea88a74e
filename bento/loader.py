"""Loading a model bundle from the BentoML store (never from the MLflow server)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from bento.predictor import ModelBundle, ModelInfo, strip_feature_names
from contracts.model_card import METADATA_KEY as CARD_METADATA_KEY
from contracts.names import (
    LABEL_MLFLOW_MODEL,
    LABEL_MLFLOW_RUN_ID,
    LABEL_MLFLOW_VERSION,
    LABEL_MODEL_DIGEST,
    LABELLED_METRICS,
    METADATA_BATCH_PROFILE,
    MLFLOW_MODEL_DIR,
    TRUSTED_MODEL_TYPES,
)
from modelfile.trust import trusting_skops

logger = logging.getLogger("cepage.service")


class ModelLoadError(RuntimeError):
    """The model in the store is missing or unusable; the message says which and why."""


def latest_tag(model_name: str) -> str:
    """The tag of the newest model named ``model_name`` in the store."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return str(bentoml.models.get(f"{model_name}:latest").tag)
    except NotFound as exc:
        raise ModelLoadError(
            f"No model '{model_name}' in the BentoML store: run `cepage package` first."
        ) from exc


def load_estimator(
    model_dir: Path, mlmodel: dict[str, Any], expected_sha256: str | None = None
) -> Any:
    """The scikit-learn estimator of an MLflow model directory, read from its skops file.

    What ``mlflow.sklearn.load_model`` does for the skops format, without importing MLflow (1.3 s
    of every cold start), and safer: the types trusted are the fixed allow-list
    (``contracts.names.TRUSTED_MODEL_TYPES``, and the estimators of ``modelfile/trust.py``),
    never the list the artifact declares, and the file must have the digest recorded when it was
    promoted (``expected_sha256``).
    """
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not flavor:
        raise ModelLoadError("it is not a scikit-learn model (no sklearn flavor in MLmodel)")
    fmt = flavor.get("serialization_format", "pickle")
    if fmt != "skops":
        raise ModelLoadError(
            f"it is saved as {fmt!r}; the service loads skops models (what `cepage train` logs)"
        )
    skops_io = trusting_skops()
    path = model_dir / flavor["pickled_model"]
    if expected_sha256 is not None:
        found = hashlib.sha256(path.read_bytes()).hexdigest()
        if found != expected_sha256:
            raise ModelLoadError(
                f"its file is not the one promoted (SHA-256 {found[:12]}…, recorded "
                f"{expected_sha256[:12]}…)"
            )
    from skops.io.exceptions import UntrustedTypesFoundException

    # One pass over the file: `load` audits every type against the allow-list before it builds
    # any object (a separate get_untrusted_types() parsed the file twice: ~200 ms for a forest).
    try:
        return skops_io.load(path, trusted=list(TRUSTED_MODEL_TYPES))
    except UntrustedTypesFoundException:
        # Refused: only now list the types, for the message (the exception has text only).
        untrusted = sorted(set(skops_io.get_untrusted_types(file=path)) - set(TRUSTED_MODEL_TYPES))
        raise ModelLoadError(
            f"its file holds types the service does not load: {untrusted}"
        ) from None


def load_bundle(tag: str) -> ModelBundle:
    """Load the native scikit-learn estimator and its feature schema for ``tag``."""
    import bentoml
    import yaml

    try:
        stored = bentoml.models.get(tag)
        model_dir = Path(stored.path_of(MLFLOW_MODEL_DIR))
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
        schema = (mlmodel.get("metadata") or {}).get("feature_schema")
        recorded = stored.info.labels.get(LABEL_MODEL_DIGEST)
        if recorded is None:
            # Packaged before digests were recorded: still allow-listed, but not pinned.
            logger.warning("Model %s has no recorded digest: run `cepage package` again.", tag)
        estimator: Any = load_estimator(model_dir, mlmodel, recorded)
    except ModelLoadError as exc:
        raise ModelLoadError(f"Model {tag} in the BentoML store cannot be served: {exc}.") from exc
    except Exception as exc:  # any failure here means "do not serve this model"
        raise ModelLoadError(f"Model {tag} in the BentoML store cannot be loaded: {exc}") from exc
    if not schema or not schema.get("features"):
        raise ModelLoadError(
            f"Model {tag} carries no feature schema: it was not trained by `cepage train`."
        )
    if not hasattr(estimator, "predict_proba"):
        raise ModelLoadError(f"Model {tag} cannot give probabilities (no predict_proba).")
    labels = stored.info.labels
    info = ModelInfo(
        name=labels.get(LABEL_MLFLOW_MODEL, stored.tag.name),
        version=labels.get(LABEL_MLFLOW_VERSION, str(stored.tag.version)),
        bento_model=str(stored.tag),
        run_id=labels.get(LABEL_MLFLOW_RUN_ID, ""),
        created_at=stored.info.creation_time.isoformat(),
        metrics={k: float(labels[k]) for k in LABELLED_METRICS if k in labels},
    )
    return ModelBundle(
        estimator=strip_feature_names(estimator),
        schema=schema,
        info=info,
        card=_card(stored.info.metadata.get(CARD_METADATA_KEY), tag),
        batch_profile=_text(stored.info.metadata.get(METADATA_BATCH_PROFILE)),
    )


def _text(stored: Any) -> str | None:
    return stored if isinstance(stored, str) else None


def _card(stored: Any, tag: str) -> dict[str, Any] | None:
    """The model card packaging stored as JSON text (None, and a warning, when it has none or it
    does not parse: the model still serves, GET /model-card says why not)."""
    if stored is None:
        logger.warning("Model %s has no model card: run `cepage package` again.", tag)
        return None
    try:
        card = json.loads(stored)
    except (TypeError, ValueError):
        logger.warning("Model %s has a model card that is not JSON: ignored.", tag)
        return None
    return card if isinstance(card, dict) else None
