"""The packaging step: MLflow champion -> BentoML store, then a Bento from bentofile.yaml."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.names import (
    CHAMPION,
    LABEL_MLFLOW_MODEL,
    LABEL_MLFLOW_RUN_ID,
    LABEL_MLFLOW_VERSION,
    LABEL_MODEL_DIGEST,
    LABELLED_METRICS,
    MLFLOW_MODEL_DIR,
    MODEL_DIGEST_TAG,
    champion_uri,
)
from train.artifacts import digest, load_estimator, model_file
from train.registry import get_alias
from train.settings import Settings
from train.tracking import StoreError, connect


@dataclass(frozen=True)
class PackageResult:
    """The BentoML model and Bento made from the champion."""

    model_tag: str
    mlflow_version: str
    bento_tag: str | None


def import_champion(settings: Settings) -> tuple[str, str]:
    """Import ``models:/NAME@champion`` into the BentoML store; return (model tag, MLflow version).

    The champion is checked first: a missing store or alias must say so, not surface as
    BentoML's misleading ``UnboundLocalError ... local_path``.
    """
    client = connect(settings, create=False)
    name = settings.model_name
    champion = get_alias(client, name, CHAMPION)
    if champion is None:
        raise StoreError(
            f"Model '{name}' has no @{CHAMPION} in {settings.tracking_uri}: run `cepage train` "
            "and `cepage promote` (or `cepage retrain`) first."
        )
    recorded = (champion.tags or {}).get(MODEL_DIGEST_TAG)
    if not recorded:
        raise StoreError(
            f"Version {champion.version} (@{CHAMPION}) has no recorded model digest: it was "
            "promoted before digests were recorded. Record it with "
            f"`cepage promote --version {champion.version} --force`, then package again."
        )
    run = client.get_run(str(champion.run_id))
    labels = {
        LABEL_MODEL_DIGEST: recorded,
        LABEL_MLFLOW_VERSION: str(champion.version),
        LABEL_MLFLOW_RUN_ID: str(champion.run_id),
        LABEL_MLFLOW_MODEL: name,
    }
    for key in LABELLED_METRICS:
        if key in run.data.metrics:
            labels[key] = f"{run.data.metrics[key]:.4f}"  # labels are strings

    import bentoml

    model = bentoml.mlflow.import_model(
        name,
        champion_uri(name),
        labels=labels,
        metadata={"mlflow_tracking_uri": _public_uri(settings.tracking_uri)},
    )
    _check_imported(model, recorded, str(champion.version))
    return str(model.tag), str(champion.version)


def _check_imported(model: Any, recorded: str, version: str) -> None:
    """The imported file must be the one the gate judged; if not, it leaves the store at once.

    Raises:
        StoreError: another type than the allow-list allows, or another file than was promoted.
    """
    import bentoml

    try:
        path = model_file(Path(model.path_of(MLFLOW_MODEL_DIR)))
        load_estimator(path)
        found = digest(path)
    except StoreError:
        bentoml.models.delete(model.tag)
        raise
    if found != recorded:
        bentoml.models.delete(model.tag)
        raise StoreError(
            f"The model file of version {version} is not the one promoted (SHA-256 {found[:12]}…, "
            f"recorded {recorded[:12]}…): nothing was packaged. Check who wrote to the registry."
        )


def build_bento(project_dir: Path) -> str:
    """Build the Bento described by ``bentofile.yaml`` in ``project_dir``; return its tag."""
    bentofile = project_dir / "bentofile.yaml"
    if not bentofile.is_file():
        raise StoreError(
            f"No bentofile.yaml in {project_dir}: run from the cepage checkout or set "
            "CEPAGE_PROJECT_DIR."
        )
    import bentoml

    bento = bentoml.bentos.build_bentofile(str(bentofile), build_ctx=str(project_dir))
    return str(bento.tag)


def package(settings: Settings, *, build: bool = True) -> PackageResult:
    """Import the champion and (unless ``build`` is False) build the Bento."""
    model_tag, version = import_champion(settings)
    bento_tag = build_bento(project_dir()) if build else None
    return PackageResult(model_tag=model_tag, mlflow_version=version, bento_tag=bento_tag)


def project_dir() -> Path:
    """Where bentofile.yaml lives: CEPAGE_PROJECT_DIR, else the current directory."""
    return Path(os.environ.get("CEPAGE_PROJECT_DIR", ".")).resolve()


def _public_uri(uri: str) -> str:
    """Drop credentials from a tracking URI before it is stored with the model."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return uri
