"""Reading a registered model's files safely: never unpickled, only allow-listed types, and a
digest that pins the exact file that was judged.

The gate scores versions with these and promotion records the digest; packaging checks that the
champion it imports is still that file. MLflow's own loader would trust whatever type list the
artifact's MLmodel declares.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from contracts.names import TRUSTED_MODEL_TYPES
from modelfile.trust import trusting_skops
from train.tracking import StoreError


def model_file(model_dir: Path) -> Path:
    """The skops file of an MLflow model directory (refused: any other format)."""
    import yaml

    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    flavor = (mlmodel.get("flavors") or {}).get("sklearn") or {}
    fmt = flavor.get("serialization_format", "pickle")
    if fmt != "skops" or "pickled_model" not in flavor:
        raise StoreError(
            f"The model in {model_dir.name} is saved as {fmt!r}: cepage loads only skops models "
            "(what `cepage train` logs), never a pickle."
        )
    return model_dir / flavor["pickled_model"]


def feature_list(model_dir: Path) -> list[dict[str, Any]] | None:
    """The feature schema's features carried in the model's MLmodel metadata (None: none)."""
    import yaml

    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    schema = (mlmodel.get("metadata") or {}).get("feature_schema") or {}
    features = schema.get("features")
    return list(features) if features else None


def digest(path: Path) -> str:
    """SHA-256 of a file, hex."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def load_estimator(path: Path) -> Any:
    """The estimator in a skops file, refused when it holds a type outside the allow-list (the
    service's rule: modelfile/trust.py)."""
    skops_io = trusting_skops()
    untrusted = set(skops_io.get_untrusted_types(file=path)) - set(TRUSTED_MODEL_TYPES)
    if untrusted:
        raise StoreError(
            f"The model file {path.name} holds types cepage does not load: "
            f"{', '.join(sorted(untrusted))}."
        )
    return skops_io.load(path, trusted=list(TRUSTED_MODEL_TYPES))


def download(model_uri: str) -> Path:
    """The model directory of ``model_uri`` (``models:/NAME/VERSION``), downloaded locally."""
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(model_uri))
