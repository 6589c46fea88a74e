"""The training step: validate, split, fit, evaluate, log everything to MLflow, register."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from contracts.names import RETRAIN_REASON_ENV, RETRAIN_REASON_TAG, TARGET_TAG
from train.data import Dataset, load_dataset
from train.evaluate import confusion_figure, evaluate
from train.pipeline import DEFAULT_MODEL, DEFAULT_SEED, build_pipeline, parse_params
from train.schema import build_feature_schema
from train.settings import Settings
from train.tracking import connect, ensure_experiment

HOLDOUT_ARTIFACT = "holdout/holdout.csv"
# The newest labelled production rows, held out of a training set built from production
# (train/dataset.py): the gate also judges candidate and champion on them.
PRODUCTION_HOLDOUT_ARTIFACT = "holdout/production.csv"
# Every row the run saw, in model form (what train/kinds.py made of the CSV) with the target: the
# run can be reproduced from MLflow alone, and `cepage dataset` adds production rows to it.
TRAINING_DATA_ARTIFACT = "data/training.csv"
SCHEMA_ARTIFACT = "feature_schema.json"


@dataclass(frozen=True)
class Provenance:
    """Where a run's data came from beyond its CSV: tags to set and files to store with it
    (artifact path -> local file); for a training set built from production
    (train/dataset.py), how many of its first rows are the original data."""

    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    original_rows: int | None = None


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    run_id: str
    version: str
    metrics: dict[str, float]
    # Each feature's kind, and what the data check wants the user to know (train/data.py).
    kinds: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def kinds_summary(self) -> str:
        """``"2 number, 1 category"``: how the columns were read, for the CLI."""
        counts = Counter(self.kinds.values())
        return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"


# The split's seed is fixed apart from the estimator's: two versions trained on the same data then
# hold out the same rows, so the gate compares them on rows neither has seen.
SPLIT_SEED = 42


def split(
    dataset: Dataset, seed: int, test_size: float, original_rows: int | None = None
) -> tuple[Any, Any, Any, Any]:
    """Stratified train/held-out split with a fixed seed.

    A set built from production (``original_rows``: its first rows are the champion's original
    data) is split so that no row the champion trained on can land in the candidate's held-out
    rows: the original rows exactly as the champion split them (same rows, same order, same
    seed), each production row by a hash of its content, the same side in every set that holds
    it.
    """
    if original_rows is not None:
        return _split_by_source(dataset, seed, test_size, original_rows)
    return train_test_split(
        dataset.features,
        dataset.target,
        test_size=test_size,
        random_state=seed,
        stratify=dataset.target,
    )


def _split_by_source(
    dataset: Dataset, seed: int, test_size: float, original_rows: int
) -> tuple[Any, Any, Any, Any]:
    import hashlib

    features, target = dataset.features, dataset.target
    head = Dataset(
        features.iloc[:original_rows], target.iloc[:original_rows], dataset.target_name,
        dataset.name, dataset.source,
    )  # fmt: skip
    x_train, x_test, y_train, y_test = split(head, seed, test_size)
    rest = features.iloc[original_rows:]
    if rest.empty:
        return x_train, x_test, y_train, y_test
    # The row as text (its features and label): the same row gets the same side every time.
    text = rest.astype(str).agg("\x1f".join, axis=1) + "\x1f" + target.iloc[original_rows:]
    held = text.map(
        lambda row: int(hashlib.sha256(row.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < test_size
    )
    return (
        pd.concat([x_train, rest[~held.to_numpy()]]),
        pd.concat([x_test, rest[held.to_numpy()]]),
        pd.concat([y_train, target.iloc[original_rows:][~held.to_numpy()]]),
        pd.concat([y_test, target.iloc[original_rows:][held.to_numpy()]]),
    )


def train(
    settings: Settings,
    *,
    data: Path | None = None,
    target: str | None = None,
    model: str = DEFAULT_MODEL,
    params: Iterable[str] = (),
    seed: int = DEFAULT_SEED,
    split_seed: int = SPLIT_SEED,
    categorical: Iterable[str] = (),
    drop: Iterable[str] = (),
    provenance: Provenance | None = None,
) -> TrainResult:
    """The training step from a user's inputs: load and check the CSV (default: the wine data;
    ``categorical``/``drop`` override the kind of named columns), parse ``KEY=VALUE`` estimator
    parameters, then :func:`train_model`.

    Raises:
        StepError: bad data, a bad parameter or an unreachable store; nothing is registered.
    """
    dataset = load_dataset(data, target, categorical=categorical, drop=drop)
    return train_model(
        settings,
        dataset,
        model=model,
        params=parse_params(params),
        seed=seed,
        split_seed=split_seed,
        provenance=provenance,
    )


def train_model(
    settings: Settings,
    dataset: Dataset,
    *,
    model: str,
    params: dict[str, Any],
    seed: int,
    split_seed: int = SPLIT_SEED,
    test_size: float = 0.25,
    provenance: Provenance | None = None,
) -> TrainResult:
    """Fit ``model`` on ``dataset`` and log and register it as a new version.

    The pipeline is built (and its parameters checked) before any MLflow call, so a bad
    parameter leaves nothing behind.
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    schema = build_feature_schema(dataset)
    pipeline = build_pipeline(model, params, seed, schema["features"])
    original_rows = provenance.original_rows if provenance else None
    x_train, x_test, y_train, y_test = split(dataset, split_seed, test_size, original_rows)
    pipeline.fit(x_train, y_train)
    metrics = evaluate(pipeline, x_test, y_test)

    client = connect(settings, create=True)
    experiment_id = ensure_experiment(client, settings)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags(
            {
                "cepage.dataset": dataset.name,
                "cepage.model": model,
                TARGET_TAG: dataset.target_name,
                **_retrain_reason(),
                **(provenance.tags if provenance else {}),
            }
        )
        mlflow.log_params(
            {"model": model, "seed": seed, "split_seed": split_seed, "test_size": test_size}
        )
        mlflow.log_params(
            {f"estimator.{k}": v for k, v in pipeline.named_steps["model"].get_params().items()}
        )
        mlflow.log_metrics(metrics)
        mlflow.log_input(
            from_pandas(
                _with_target(x_train, y_train),
                source=_source(dataset),
                name=f"{dataset.name}-train",
                targets=dataset.target_name,
            ),
            context="training",
        )
        holdout = _with_target(x_test, y_test)
        mlflow.log_input(
            from_pandas(
                holdout,
                source=_source(dataset),
                name=f"{dataset.name}-holdout",
                targets=dataset.target_name,
            ),
            context="testing",
        )
        # The gate re-scores candidate and champion on these exact rows.
        mlflow.log_text(holdout.to_csv(index=False), HOLDOUT_ARTIFACT)
        mlflow.log_text(
            _with_target(dataset.features, dataset.target).to_csv(index=False),
            TRAINING_DATA_ARTIFACT,
        )
        for artifact, local in (provenance.artifacts if provenance else {}).items():
            mlflow.log_text(local.read_text(), artifact)
        mlflow.log_dict(schema, SCHEMA_ARTIFACT)
        mlflow.log_figure(confusion_figure(pipeline, x_test, y_test), "confusion_matrix.png")
        with _loading_what_we_just_built():
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=infer_signature(x_train, pipeline.predict(x_train.head(5))),
                input_example=x_train.head(3),
                metadata={"feature_schema": schema},
                registered_model_name=settings.model_name,
                skops_trusted_types=_trusted_types(pipeline),
                # Explicit, because MLflow's inference re-imports the model in a subprocess (~10 s).
                pip_requirements=_requirements(),
            )
    return TrainResult(
        run_id=run.info.run_id,
        version=str(info.registered_model_version),
        metrics=metrics,
        kinds=dict(dataset.kinds),
        notes=dataset.notes,
    )


def _retrain_reason() -> dict[str, str]:
    reason = os.environ.get(RETRAIN_REASON_ENV, "").strip()
    # MLflow caps a tag's value at 8000 characters (5000 on older servers).
    return {RETRAIN_REASON_TAG: reason[:5000]} if reason else {}


def _with_target(features: pd.DataFrame, target: pd.Series) -> pd.DataFrame:
    frame = features.copy()
    frame[target.name] = target.to_numpy()
    return frame


def _source(dataset: Dataset) -> Any:
    """Where the data came from, as an MLflow dataset source (a string is ambiguous to MLflow)."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import get_registered_sources

    if dataset.source == "sklearn":
        return CodeDatasetSource({"loader": "sklearn.datasets.load_wine"})
    # MLflow registers this class dynamically, so it can only be found by name.
    local: Any = next(
        s
        for s in get_registered_sources()
        if getattr(s, "__name__", "") == "LocalArtifactDatasetSource"
    )
    return local(str(Path(dataset.source).resolve()))


def _requirements() -> list[str]:
    """What loading the model needs, pinned to the versions that trained it."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "skops", "numpy", "pandas")]


def _trusted_types(pipeline: Any) -> list[str]:
    """The types skops must trust to load our own pipeline (we just built it ourselves)."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))


@contextmanager
def _loading_what_we_just_built() -> Iterator[None]:
    """Let MLflow load back, once, the pipeline this process has just fitted.

    ``log_model`` reloads the model to check its input example; cepage otherwise forbids MLflow
    to deserialize models (``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``: what comes from the
    registry is read by ``train/artifacts.py`` with a fixed allow-list). This object never left
    the process, so trusting it here opens nothing.
    """
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    previous = os.environ.get(key)
    os.environ[key] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous
