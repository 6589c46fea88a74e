"""Loading the estimator from an MLflow model directory without MLflow."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from bento.loader import ModelLoadError, load_estimator


def test_skops_model_loads_with_its_trusted_types(tmp_path: Path) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], ["a", "b"])
    skops.io.dump(model, tmp_path / "model.skops")
    mlmodel = {
        "flavors": {
            "sklearn": {
                "pickled_model": "model.skops",
                "serialization_format": "skops",
                "skops_trusted_types": [],
            }
        }
    }
    loaded = load_estimator(tmp_path, mlmodel)
    assert loaded.predict([[1.0]]).tolist() == ["b"]


def test_other_formats_and_flavors_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a scikit-learn model"):
        load_estimator(tmp_path, {"flavors": {"python_function": {}}})
    pickled = {
        "flavors": {"sklearn": {"pickled_model": "m.pkl", "serialization_format": "cloudpickle"}}
    }
    with pytest.raises(ModelLoadError, match="saved as 'cloudpickle'"):
        load_estimator(tmp_path, pickled)


def _skops_dir(tmp_path: Path, model: object, declared: list[str]) -> dict[str, object]:
    skops.io.dump(model, tmp_path / "model.skops")
    return {
        "flavors": {
            "sklearn": {
                "pickled_model": "model.skops",
                "serialization_format": "skops",
                "skops_trusted_types": declared,
            }
        }
    }


def test_a_type_outside_the_allow_list_is_refused_whatever_the_artifact_declares(
    tmp_path: Path,
) -> None:
    # FunctionTransformer(func=os.system): the artifact "trusts" it; the service must not.
    evil = Pipeline([("run", FunctionTransformer(func=os.system))])
    declared = skops.io.get_untrusted_types(data=skops.io.dumps(evil))
    assert declared, "the test needs a type skops does not trust by default"
    mlmodel = _skops_dir(tmp_path, evil, declared)
    refused = r"types the service does not load: \[.*'posix\.system'"
    with pytest.raises(ModelLoadError, match=refused):
        load_estimator(tmp_path, mlmodel)


def test_the_file_must_have_the_digest_recorded_at_promotion(tmp_path: Path) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], ["a", "b"])
    mlmodel = _skops_dir(tmp_path, model, [])
    good = hashlib.sha256((tmp_path / "model.skops").read_bytes()).hexdigest()
    assert load_estimator(tmp_path, mlmodel, good).predict([[1.0]]).tolist() == ["b"]
    with pytest.raises(ModelLoadError, match="not the one promoted"):
        load_estimator(tmp_path, mlmodel, "0" * 64)
