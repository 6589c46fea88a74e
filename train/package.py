"""The packaging step: MLflow champion -> BentoML store, then a Bento from bentofile.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.model_card import METADATA_KEY as CARD_METADATA_KEY
from contracts.names import (
    CHALLENGER,
    CHAMPION,
    LABEL_MLFLOW_MODEL,
    LABEL_MLFLOW_RUN_ID,
    LABEL_MLFLOW_VERSION,
    LABEL_MODEL_DIGEST,
    LABELLED_METRICS,
    METADATA_BATCH_PROFILE,
    MLFLOW_MODEL_DIR,
    MODEL_DIGEST_TAG,
    challenger_store_name,
)
from train.artifacts import digest, load_estimator, model_file
from train.errors import StepError
from train.model_card import build_card, store_card
from train.registry import get_alias
from train.settings import Settings
from train.tracking import StoreError, connect

# The measurement loads the model and times ~30 calls: seconds, even for a large forest.
MEASURE_TIMEOUT_S = 300


@dataclass(frozen=True)
class PackageResult:
    """The BentoML model and Bento made from the champion."""

    model_tag: str
    mlflow_version: str
    bento_tag: str | None
    challenger_version: str | None = None  # packaged beside it for the shadow, if any
    challenger_refused: str | None = None  # why the registry's challenger was not packaged


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
    labels = _labels(client, champion, recorded, name)

    # The card first: a version whose card cannot be made (not logged by `cepage train`) is
    # refused before anything enters the store.
    card = build_card(client, name, str(champion.version), project_dir())

    import bentoml
    import mlflow

    # Downloaded once, the version whose digest and card were just read (not the alias again,
    # which may have moved): measured here, then imported from this copy. The copy sits beside
    # the store (its volume in a container), not in a /tmp that may be memory.
    scratch_root = os.environ.get("BENTOML_HOME")
    if scratch_root:
        os.makedirs(scratch_root, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cepage-package-", dir=scratch_root) as scratch:
        uri = f"models:/{name}/{champion.version}"
        model_dir = Path(mlflow.artifacts.download_artifacts(uri, dst_path=scratch))
        profile = measure_batching(model_dir, recorded)
        model = bentoml.mlflow.import_model(
            name,
            str(model_dir),
            labels=labels,
            metadata={
                "mlflow_tracking_uri": _public_uri(settings.tracking_uri),
                # A JSON string, not a mapping: model.yaml then gives it back exactly as made.
                CARD_METADATA_KEY: json.dumps(card.document),
                METADATA_BATCH_PROFILE: profile,
            },
        )
    _check_imported(model, recorded, str(champion.version))
    # Stored with the version once it is packaged: each packaging makes it anew, so the card
    # on the run is the one the last Bento of this version carries.
    store_card(client, str(champion.run_id), card)
    return str(model.tag), str(champion.version)


def import_challenger(settings: Settings) -> tuple[str, str] | None:
    """Import ``models:/NAME@challenger`` into the store as ``NAME-challenger`` for the service's
    shadow (``CEPAGE_SHADOW``), checked like the champion (allow-list, the digest the gate
    recorded when it judged it); return (model tag, MLflow version), or None when the registry
    has no challenger apart from the champion, in which case any challenger left in the store is
    removed (a promoted or replaced one must not be shadowed)."""
    import bentoml

    client = connect(settings, create=False)
    name = settings.model_name
    store_name = challenger_store_name(name)
    challenger = get_alias(client, name, CHALLENGER)
    champion = get_alias(client, name, CHAMPION)
    if challenger is None or (champion is not None and challenger.version == champion.version):
        _clear_challenger(store_name)
        return None
    recorded = (challenger.tags or {}).get(MODEL_DIGEST_TAG)
    if not recorded:
        raise StoreError(
            f"Version {challenger.version} (@{CHALLENGER}) has no recorded model digest: judge it "
            f"again with `cepage promote --version {challenger.version}`, then package again."
        )
    card = build_card(client, name, str(challenger.version), project_dir())
    model = bentoml.mlflow.import_model(
        store_name,
        f"models:/{name}@{CHALLENGER}",
        labels=_labels(client, challenger, recorded, name),
        metadata={
            "mlflow_tracking_uri": _public_uri(settings.tracking_uri),
            CARD_METADATA_KEY: json.dumps(card.document),
        },
    )
    _check_imported(model, recorded, str(challenger.version))
    return str(model.tag), str(challenger.version)


def _clear_challenger(store_name: str) -> None:
    """Remove every challenger model from the store: none is shadowed any more."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        stale = bentoml.models.list(store_name)
    except NotFound:
        stale = []
    for model in stale:
        bentoml.models.delete(model.tag)


def _labels(client: Any, version: Any, recorded: str, name: str) -> dict[str, str]:
    """The store labels of a registered version: where it comes from, its digest, its metrics."""
    run = client.get_run(str(version.run_id))
    labels = {
        LABEL_MODEL_DIGEST: recorded,
        LABEL_MLFLOW_VERSION: str(version.version),
        LABEL_MLFLOW_RUN_ID: str(version.run_id),
        LABEL_MLFLOW_MODEL: name,
    }
    for key in LABELLED_METRICS:
        if key in run.data.metrics:
            labels[key] = f"{run.data.metrics[key]:.4f}"  # labels are strings
    return labels


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


def measure_batching(model_dir: Path, recorded: str) -> str:
    """The serving path's cost of 1 row and of N rows on this model, as the JSON text stored with
    it: the service batches the models for which it pays (bento/batching.py).

    Measured by the service's own code in a process of its own (``python -m bento.batching``:
    the training steps never import the service), which loads the model as the service does
    (allow-list, the digest the gate recorded), so a file that would not serve is refused here,
    before anything enters the store.

    Raises:
        StoreError: the model cannot be loaded as the service would, or the measurement failed.
    """
    done = subprocess.run(
        [sys.executable, "-m", "bento.batching", str(model_dir), "--sha256", recorded],
        capture_output=True, text=True, timeout=MEASURE_TIMEOUT_S, check=False,
    )  # fmt: skip  # nosec B603: this interpreter, fixed arguments
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise StoreError(f"The champion cannot be served: {why}. Nothing was packaged.")
    profile = lines[-1]
    try:
        json.loads(profile)
    except ValueError:
        raise StoreError(f"The batching measurement gave {profile!r}, not JSON.") from None
    return profile


def build_bento(project_dir: Path, models: list[str] | None = None) -> str:
    """Build the Bento described by ``bentofile.yaml`` in ``project_dir``; return its tag.

    ``models``: the store's models the Bento carries (the champion and the shadow's challenger),
    instead of the one the service declares.
    """
    bentofile = project_dir / "bentofile.yaml"
    if not bentofile.is_file():
        raise StoreError(
            f"No bentofile.yaml in {project_dir}: run from the cepage checkout or set "
            "CEPAGE_PROJECT_DIR."
        )
    import bentoml

    if not models:
        bento = bentoml.bentos.build_bentofile(str(bentofile), build_ctx=str(project_dir))
        return str(bento.tag)
    import yaml

    config = yaml.safe_load(bentofile.read_text())
    config["models"] = models
    return str(bentoml.bentos.build(**config, build_ctx=str(project_dir)).tag)


def package(settings: Settings, *, build: bool = True) -> PackageResult:
    """Import the champion and (unless ``build`` is False) build the Bento."""
    model_tag, version = import_champion(settings)
    # The champion is what serves: a challenger that cannot be packaged (judged before the gate
    # recorded digests, or its card cannot be made) is left out, never blocks the release.
    refused = None
    try:
        challenger = import_challenger(settings)
    except StepError as exc:
        challenger, refused = None, str(exc)
        _clear_challenger(challenger_store_name(settings.model_name))
    models = None if challenger is None else [model_tag, challenger[0]]
    bento_tag = build_bento(project_dir(), models) if build else None
    return PackageResult(
        model_tag=model_tag,
        mlflow_version=version,
        bento_tag=bento_tag,
        challenger_version=None if challenger is None else challenger[1],
        challenger_refused=refused,
    )


def project_dir() -> Path:
    """Where bentofile.yaml lives: CEPAGE_PROJECT_DIR, else the current directory."""
    return Path(os.environ.get("CEPAGE_PROJECT_DIR", ".")).resolve()


def _public_uri(uri: str) -> str:
    """Drop credentials from a tracking URI before it is stored with the model."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return uri
