"""The registry aliases and versions of the served model.

``champion`` is what the service serves, ``previous`` the rollback target, ``challenger`` the
last candidate the gate rejected (``train/gate.py`` decides which; this module moves them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.names import CHALLENGER, CHAMPION, MODEL_DIGEST_TAG, PREVIOUS
from train.artifacts import digest, download, load_estimator, model_file
from train.settings import Settings
from train.tracking import StoreError, connect

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def get_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind ``name@alias``, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def latest_version(client: MlflowClient, name: str) -> ModelVersion:
    """The newest registered version of ``name``."""
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise StoreError(f"Registered model '{name}' has no version yet: run `cepage train` first.")
    return max(versions, key=lambda v: int(v.version))


def force_promote(settings: Settings, version: str) -> None:
    """Make ``version`` the champion without the gate (an operator's explicit choice)."""
    client = connect(settings, create=False)
    name = settings.model_name
    get_version(client, name, version)
    path = model_file(download(f"models:/{name}/{version}"))
    load_estimator(path)  # the gate is skipped, not the check of what the file holds
    set_champion(client, name, version, get_alias(client, name, CHAMPION), digest(path))


def set_champion(
    client: MlflowClient, name: str, version: str, old: ModelVersion | None, sha256: str
) -> None:
    """``version`` becomes champion, its model file's digest recorded; the old champion becomes
    ``previous``."""
    client.set_model_version_tag(name, version, MODEL_DIGEST_TAG, sha256)
    if old is not None and str(old.version) != str(version):
        client.set_registered_model_alias(name, PREVIOUS, old.version)
    client.set_registered_model_alias(name, CHAMPION, version)
    challenger = get_alias(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == str(version):
        client.delete_registered_model_alias(name, CHALLENGER)


def set_challenger(client: MlflowClient, name: str, version: str, sha256: str) -> None:
    """``version`` becomes challenger, with the digest of the file the gate judged: packaging it
    for the shadow (``cepage package``) checks the file against it, as for a champion."""
    client.set_model_version_tag(name, version, MODEL_DIGEST_TAG, sha256)
    client.set_registered_model_alias(name, CHALLENGER, version)


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise StoreError(f"Model '{name}' has no version {version}.") from exc


def champion_version(settings: Settings) -> str:
    """The version number behind ``@champion``.

    Raises:
        StoreError: the registry has no such model or alias.
    """
    client = connect(settings, create=False)
    champion = get_alias(client, settings.model_name, CHAMPION)
    if champion is None:
        raise StoreError(f"No {settings.model_name}@{CHAMPION} in {settings.tracking_uri}.")
    return str(champion.version)
