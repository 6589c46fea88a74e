"""Loading the estimator from an MLflow model directory without MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

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
