"""Pipelines, parameters and the feature schema."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import StandardScaler

from tests.support.mixed_data import PLAN, RARE_PLAN, TARGET, customers
from train.data import load_dataset, validate
from train.evaluate import evaluate
from train.pipeline import MODELS, ParamError, build_pipeline, parse_params
from train.schema import build_feature_schema, model_frame
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
    assert proline["kind"] == "integer"
    assert proline["nullable"] is False
    assert proline["min"] == dataset.features["proline"].min()
    assert proline["max"] == dataset.features["proline"].max()
    assert proline["min"] <= proline["median"] <= proline["max"]
    reference = proline["reference"]
    assert len(reference["edges"]) == len(reference["fractions"]) + 1
    assert sum(reference["fractions"]) == pytest.approx(1.0)


def test_mixed_schema_has_kinds_blanks_and_categories_by_frequency() -> None:
    dataset = validate(customers(), TARGET, name="c", source="c")
    schema = build_feature_schema(dataset)
    assert schema["schema_version"] == 2
    by_name = {f["name"]: f for f in schema["features"]}
    plan = by_name[PLAN]
    assert plan["kind"] == "category"
    assert plan["categories"][-1] == RARE_PLAN  # the least frequent last
    assert plan["frequencies"] == sorted(plan["frequencies"], reverse=True)
    assert sum(plan["frequencies"]) == pytest.approx(1.0)
    paperless = by_name["paperless billing"]
    assert paperless["kind"] == "boolean"
    assert paperless["nullable"] is True
    assert paperless["missing_share"] == pytest.approx(20 / 400)
    assert sum(paperless["reference"]["fractions"]) == pytest.approx(1.0)
    charges = by_name["Monthly charges ($)"]
    assert charges["kind"] == "number" and charges["nullable"] is True
    assert not np.isnan(charges["median"])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_trains_on_mixed_data_and_scores_raw_rows(model: str) -> None:
    dataset = validate(customers(), TARGET, name="c", source="c")
    schema = build_feature_schema(dataset)
    pipeline = build_pipeline(model, {}, 42, schema["features"])
    assert isinstance(pipeline.steps[0][1], ColumnTransformer)
    x_train, x_test, y_train, y_test = split(dataset, seed=42, test_size=0.25)
    pipeline.fit(x_train, y_train)
    assert evaluate(pipeline, x_test, y_test)["f1_macro"] > 0.7
    # Rows as read back from a CSV (text), with an unseen category and blanks: still scored.
    raw = x_test.astype(str).replace("nan", "").head(5).copy()
    raw[PLAN] = ["gold", "basic", "", "premium", "basic"]
    proba = pipeline.predict_proba(model_frame(raw, schema["features"]))
    assert np.isfinite(proba).all()


def test_numbers_never_missing_keep_the_plain_scaler() -> None:
    schema = build_feature_schema(load_dataset(None, None))
    assert isinstance(
        build_pipeline("linear", {}, 0, schema["features"]).steps[0][1], StandardScaler
    )
