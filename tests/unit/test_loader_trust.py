"""What every reader trusts a model file to hold (modelfile/trust.py): the estimators
cepage's pipelines are built from, not every estimator scikit-learn has."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import skops.io

from contracts.names import TRUSTED_ESTIMATORS
from tests.support.mixed_data import customers
from tests.support.procs import ROOT
from train.data import load_dataset
from train.pipeline import MODELS, build_pipeline
from train.schema import build_feature_schema


def object_types(schema: Any) -> set[str]:
    """The classes a skops file builds as objects (its ``ObjectNode`` entries)."""
    found: set[str] = set()
    if isinstance(schema, dict):
        if schema.get("__loader__") == "ObjectNode":
            found.add(f"{schema['__module__']}.{schema['__class__']}")
        for value in schema.values():
            found |= object_types(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= object_types(value)
    return found


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("mixed", [False, True], ids=["numbers", "mixed"])
def test_every_estimator_a_pipeline_holds_is_trusted(
    model: str, mixed: bool, tmp_path: Path
) -> None:
    data, target = None, None
    if mixed:  # categories and blanks: the column transformer, imputers, one-hot encoder
        data, target = tmp_path / "customers.csv", "churned?"
        customers().to_csv(data, index=False)
    dataset = load_dataset(data, target)
    schema = build_feature_schema(dataset)
    pipeline = build_pipeline(model, {}, 42, schema["features"]).fit(
        dataset.features, dataset.target
    )
    path = tmp_path / "model.skops"
    skops.io.dump(pipeline, path)
    held = object_types(json.loads(zipfile.ZipFile(path).read("schema.json")))
    assert held and held <= set(TRUSTED_ESTIMATORS), sorted(held - set(TRUSTED_ESTIMATORS))


# In a fresh interpreter: skops computes its default trusted types once, at its first import.
LOAD = """
import sys
from pathlib import Path
from bento.loader import ModelLoadError, load_estimator

mlmodel = {"flavors": {"sklearn": {"serialization_format": "skops",
                                   "pickled_model": "model.skops"}}}
load_estimator(Path(sys.argv[1]), mlmodel)
try:
    load_estimator(Path(sys.argv[2]), mlmodel)
except ModelLoadError as exc:
    print("refused:", exc)
print("pytest imported:", "pytest" in sys.modules)
"""


def test_an_estimator_outside_the_list_is_refused_and_sklearn_is_not_walked(
    tmp_path: Path,
) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    dataset = load_dataset(None, None)
    ours = build_pipeline("linear", {}, 42, build_feature_schema(dataset)["features"])
    other = make_pipeline(StandardScaler(), SVC())  # skops trusts it by default
    for name, pipeline in (("ours", ours), ("other", other)):
        (tmp_path / name).mkdir()
        fitted = pipeline.fit(dataset.features, dataset.target)
        skops.io.dump(fitted, tmp_path / name / "model.skops")
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(tmp_path / "ours"), str(tmp_path / "other")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "refused: its file holds types the service does not load" in done.stdout, done.stdout
    assert "sklearn.svm._classes.SVC" in done.stdout
    # scikit-learn's estimator walk (which imports its test helpers, pytest included) never ran.
    assert "pytest imported: False" in done.stdout


def test_the_gate_refuses_what_the_service_would_not_load(tmp_path: Path) -> None:
    # train/artifacts.py reads the file for the gate, `promote --force` and packaging: the same
    # rule as the service, even where skops was imported before (by MLflow, in `cepage retrain`).
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from train.artifacts import load_estimator
    from train.tracking import StoreError

    dataset = load_dataset(None, None)
    path = tmp_path / "model.skops"
    skops.io.dump(
        make_pipeline(StandardScaler(), SVC()).fit(dataset.features, dataset.target), path
    )
    with pytest.raises(StoreError, match=r"does not load: sklearn\.svm\._classes\.SVC"):
        load_estimator(path)
    ours = build_pipeline("linear", {}, 42, build_feature_schema(dataset)["features"])
    skops.io.dump(ours.fit(dataset.features, dataset.target), path)
    assert load_estimator(path).predict(dataset.features[:1]).shape == (1,)
