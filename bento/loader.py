"""Loading a model bundle from the BentoML store (never from the MLflow server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bento.predictor import ModelBundle, ModelInfo, strip_feature_names
from contracts.names import (
    LABEL_MLFLOW_MODEL,
    LABEL_MLFLOW_RUN_ID,
    LABEL_MLFLOW_VERSION,
    LABELLED_METRICS,
    MLFLOW_MODEL_DIR,
)


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


def load_estimator(model_dir: Path, mlmodel: dict[str, Any]) -> Any:
    """The scikit-learn estimator of an MLflow model directory, read from its skops file.

    This is what ``mlflow.sklearn.load_model`` does for the skops format, without importing
    MLflow (1.3 s of every cold start) and with the same trusted types recorded at training.
    """
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not flavor:
        raise ModelLoadError("it is not a scikit-learn model (no sklearn flavor in MLmodel)")
    fmt = flavor.get("serialization_format", "pickle")
    if fmt != "skops":
        raise ModelLoadError(
            f"it is saved as {fmt!r}; the service loads skops models (what `cepage train` logs)"
        )
    import skops.io

    return skops.io.load(
        model_dir / flavor["pickled_model"], trusted=flavor.get("skops_trusted_types") or []
    )


def load_bundle(tag: str) -> ModelBundle:
    """Load the native scikit-learn estimator and its feature schema for ``tag``."""
    import bentoml
    import yaml

    try:
        stored = bentoml.models.get(tag)
        model_dir = Path(stored.path_of(MLFLOW_MODEL_DIR))
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
        schema = (mlmodel.get("metadata") or {}).get("feature_schema")
        estimator: Any = load_estimator(model_dir, mlmodel)
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
    return ModelBundle(estimator=strip_feature_names(estimator), schema=schema, info=info)
