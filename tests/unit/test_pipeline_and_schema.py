"""Pipelines, parameters and the feature schema."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from train.data import load_dataset
from train.evaluate import evaluate
from train.pipeline import MODELS, ParamError, build_pipeline, parse_params
from train.schema import build_feature_schema
from train.training import split


def test_parse_params_reads_literals_and_strings() -> None:
    assert parse_params(["C=0.5", "max_iter=10", "penalty=l2", "x=None"]) == {
        "C": 0.5,
        "max_iter": 10,
        "penalty": "l2",
        "x": None,
    }
    with pytest.raises(ParamError, match="KEY=VALUE"):
        parse_params(["oops"])


def test_unknown_model_or_param_is_refused() -> None:
    with pytest.raises(ParamError, match="Unknown model 'svm'"):
        build_pipeline("svm", {}, 0)
    with pytest.raises(ParamError, match="no parameter n_estimators"):
        build_pipeline("linear", {"n_estimators": 3}, 0)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_scales_then_fits_well_on_wine(model: str) -> None:
    dataset = load_dataset(None, None)
    x_train, x_test, y_train, y_test = split(dataset, seed=42, test_size=0.25)
    pipeline = build_pipeline(model, {}, 42)
    assert isinstance(pipeline.steps[0][1], StandardScaler)
    pipeline.fit(x_train, y_train)
    metrics = evaluate(pipeline, x_test, y_test)
    assert metrics["f1_macro"] > 0.9
    assert {"accuracy", "log_loss", "f1_Nebbiolo", "f1_Barbera"} <= set(metrics)


def test_split_is_stratified_and_reproducible() -> None:
    dataset = load_dataset(None, None)
    first = split(dataset, seed=7, test_size=0.25)
    again = split(dataset, seed=7, test_size=0.25)
    assert first[1].index.equals(again[1].index)
    shares = first[3].value_counts(normalize=True)
    overall = dataset.target.value_counts(normalize=True)
    assert np.allclose(shares.sort_index(), overall.sort_index(), atol=0.03)


def test_schema_describes_every_feature_and_class() -> None:
    dataset = load_dataset(None, None)
    schema = build_feature_schema(dataset)
    assert schema["classes"] == ["Barbera", "Grignolino", "Nebbiolo"]
    assert schema["target"] == "cultivar"
    names = [f["name"] for f in schema["features"]]
    assert names == list(dataset.features.columns)
    proline = next(f for f in schema["features"] if f["name"] == "proline")
    assert proline["dtype"] == "integer"
    assert proline["min"] == dataset.features["proline"].min()
    assert proline["max"] == dataset.features["proline"].max()
    assert proline["min"] <= proline["median"] <= proline["max"]
    reference = proline["reference"]
    assert len(reference["edges"]) == len(reference["fractions"]) + 1
    assert sum(reference["fractions"]) == pytest.approx(1.0)
