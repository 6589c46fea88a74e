"""Names written by one part of cepage and read by another: one home each.

The training side writes them into MLflow and the BentoML store; the service, the CLI's
registry report and the workflows read them back. Change one here and both sides follow.
"""

from __future__ import annotations

from typing import Final

# The registered model's name in MLflow is also its name in the BentoML store.
MODEL_NAME: Final = "cepage-classifier"

# Registry aliases: what is served, the rollback target, the last candidate the gate rejected.
CHAMPION: Final = "champion"
PREVIOUS: Final = "previous"
CHALLENGER: Final = "challenger"

# Tags of a training run.
TARGET_TAG: Final = "cepage.target"

# Tags the gate writes on the model version it judged.
GATE_DECISION_TAG: Final = "gate.decision"
GATE_REASON_TAG: Final = "gate.reason"
GATE_CANDIDATE_F1_TAG: Final = "gate.candidate_f1"
GATE_CHAMPION_F1_TAG: Final = "gate.champion_f1"
# The same two scores on the labelled production rows the candidate's training set held out
# (train/dataset.py), and how many there were; set only when the production check ran.
GATE_PRODUCTION_ROWS_TAG: Final = "gate.production_rows"
GATE_PRODUCTION_CANDIDATE_F1_TAG: Final = "gate.production_candidate_f1"
GATE_PRODUCTION_CHAMPION_F1_TAG: Final = "gate.production_champion_f1"

# Labels of a model in the BentoML store (strings; shown by `bentoml models list` and /metadata).
LABEL_MLFLOW_MODEL: Final = "mlflow_model"
LABEL_MLFLOW_VERSION: Final = "mlflow_version"
LABEL_MLFLOW_RUN_ID: Final = "mlflow_run_id"
# Training metrics copied into labels too, under their MLflow names.
LABELLED_METRICS: Final = ("accuracy", "f1_macro", "log_loss")
# The MLflow model directory inside a BentoML model (what bentoml.mlflow.import_model writes).
MLFLOW_MODEL_DIR: Final = "mlflow_model"

# SHA-256 of the model file, recorded on the version when it becomes champion (a version tag),
# copied into the BentoML model's labels at packaging, and checked again before it is loaded.
MODEL_DIGEST_TAG: Final = "cepage.model_sha256"
LABEL_MODEL_DIGEST: Final = "model_sha256"
# The model's cost on 1 row and on N rows, measured at packaging (bento/batching.py), in the
# BentoML model's metadata: the service batches the models for which batching pays.
METADATA_BATCH_PROFILE: Final = "batch_profile"

# The only types a model file may hold beyond those skops trusts by default (NumPy, the builtins
# and, narrowed by modelfile/trust.py, TRUSTED_ESTIMATORS below). Fixed here, never read
# from the artifact: whoever can write to the registry must not choose what gets loaded. Widen it
# when a new model option needs it.
# The forest's trees, and the NumPy dtype the one-hot encoder of mixed-data models keeps (its
# `dtype=np.float64` parameter: a type object, no code).
TRUSTED_MODEL_TYPES: Final = ("sklearn.tree._tree.Tree", "numpy.dtype")
# The scikit-learn estimators cepage's pipelines are built from (train/pipeline.py), which every
# reader of a model file trusts in place of skops' default, every estimator scikit-learn has
# (modelfile/trust.py: the gate, packaging and the service).
# tests/unit/test_loader_trust.py fails when a pipeline holds one that is not listed here.
TRUSTED_ESTIMATORS: Final = (
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.impute._base.MissingIndicator",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
)


def challenger_store_name(model_name: str = MODEL_NAME) -> str:
    """The BentoML store's name for the packaged @challenger (the shadow's model): another name
    than the champion's, so the newest ``model_name`` is always the served champion."""
    return f"{model_name}-{CHALLENGER}"


def champion_uri(model_name: str = MODEL_NAME) -> str:
    """The MLflow URI of the served version of ``model_name``."""
    return f"models:/{model_name}@{CHAMPION}"


# How long a prediction id accepts feedback (CEPAGE_FEEDBACK_MAX_AGE_SECONDS' default): the
# service checks it, `cepage dataset --since-days` looks that far back for the labels' predictions.
FEEDBACK_MAX_AGE_SECONDS: Final = 30 * 24 * 3600

# Why an automatic retrain runs (JSON from the retrain trigger, or the retrain workflow's
# `reason` input): the training run records it as its tag RETRAIN_REASON_TAG.
RETRAIN_REASON_ENV: Final = "CEPAGE_RETRAIN_REASON"
RETRAIN_REASON_TAG: Final = "cepage.retrain.reason"
