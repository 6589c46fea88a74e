"""Loading a model bundle from the BentoML store (never from the MLflow server)."""

from __future__ import annotations

from typing import Any

from bento.predictor import ModelBundle, ModelInfo, strip_feature_names


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


def load_bundle(tag: str) -> ModelBundle:
    """Load the native scikit-learn estimator and its feature schema for ``tag``."""
    import bentoml
    import mlflow.sklearn
    from mlflow.models import Model

    try:
        stored = bentoml.models.get(tag)
        path = stored.path_of("mlflow_model")
        schema = (Model.load(path).metadata or {}).get("feature_schema")
        estimator: Any = mlflow.sklearn.load_model(path)
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
        name=labels.get("mlflow_model", stored.tag.name),
        version=labels.get("mlflow_version", str(stored.tag.version)),
        bento_model=str(stored.tag),
        run_id=labels.get("mlflow_run_id", ""),
        created_at=stored.info.creation_time.isoformat(),
        metrics={k: float(labels[k]) for k in ("accuracy", "f1_macro", "log_loss") if k in labels},
    )
    return ModelBundle(estimator=strip_feature_names(estimator), schema=schema, info=info)
