"""What is loaded from the registry is checked before it runs: a fixed allow-list of types (never
the artifact's own list, never a pickle) and the file's digest recorded at promotion, checked
again at packaging and by the service (tests/unit/test_loader.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from contracts.names import MODEL_DIGEST_TAG, MODEL_NAME
from tests.support.procs import cepage, stack_env

pytestmark = pytest.mark.integration


def client(home: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def aliases(home: Path) -> dict[str, str]:
    model = client(home).get_registered_model(MODEL_NAME)
    return {alias: str(version) for alias, version in model.aliases.items()}


def champion_home(home: Path) -> dict[str, str]:
    env = stack_env(home)
    for args in (("train",), ("promote",)):
        done = cepage(*args, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    return env


def register_evil_version(home: Path) -> str:
    """A version whose skops file calls os.system and whose MLmodel 'trusts' it."""
    import mlflow

    evil = Pipeline([("run", FunctionTransformer(func=os.system))])
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(evil))
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    mlflow.set_experiment("cepage")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            evil,
            name="model",
            registered_model_name=MODEL_NAME,
            serialization_format="skops",
            skops_trusted_types=trusted,
        )
    return str(info.registered_model_version)


def test_a_model_holding_other_types_is_never_promoted_even_by_force(tmp_path: Path) -> None:
    env = champion_home(tmp_path)
    version = register_evil_version(tmp_path)
    done = cepage("promote", "--version", version, "--force", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "holds types cepage does not load: posix.system" in done.stderr
    assert aliases(tmp_path) == {"champion": "1"}


def test_promotion_records_the_digest_and_packaging_refuses_another_file(tmp_path: Path) -> None:
    env = champion_home(tmp_path)
    recorded = client(tmp_path).get_model_version(MODEL_NAME, "1").tags[MODEL_DIGEST_TAG]
    assert len(recorded) == 64
    # Someone with write access to the artifact store swaps the champion's file.
    [model_file] = list((tmp_path / "mlartifacts").rglob("model.skops"))
    other = LogisticRegression().fit([[0.0] * 13, [1.0] * 13], ["x", "y"])
    skops.io.dump(other, model_file)
    done = cepage("package", "--no-build", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "is not the one promoted" in done.stderr and "nothing was packaged" in done.stderr
    models = tmp_path / "bentoml" / "models"
    assert not models.is_dir() or not any(models.rglob("model.yaml")), "it stayed in the store"
