"""Explanations over HTTP from a real `bentoml serve`: the wine model (linear, three classes), the
mixed-data model (linear, two classes, blanks and categories) and a forest trained by the real
CLI on the mixed data.

Each answer is checked against the same model file scored here, without bento/explain.py: the
linear model's decision function, the forest's probability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml

from bento.loader import load_estimator
from bento.predictor import ModelBundle, ModelInfo, Predictor, strip_feature_names
from contracts.names import MLFLOW_MODEL_DIR, MODEL_NAME
from tests.support.mixed_data import CALLS, CHARGES, PAPERLESS, PLAN, REGION, TENURE

pytestmark = pytest.mark.integration

EXACT = 1e-9


def predict(url: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{url}/predict", json=body, timeout=30)


def served_model(home: Path, metadata: dict[str, Any]) -> Predictor:
    """The model file the service serves, loaded here from the home's BentoML store."""
    models = home / "bentoml" / "models" / MODEL_NAME
    for directory in sorted(p for p in models.iterdir() if p.is_dir()):
        labels = yaml.safe_load((directory / "model.yaml").read_text())["labels"]
        if labels.get("mlflow_version") == metadata["version"]:
            model_dir = directory / MLFLOW_MODEL_DIR
            mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
            estimator = strip_feature_names(load_estimator(model_dir, mlmodel))
            info = ModelInfo("m", metadata["version"], "m", "r", "t")
            return Predictor(ModelBundle(estimator, metadata["feature_schema"], info))
    raise AssertionError(f"version {metadata['version']} is not in {models}")


def local_scores(
    predictor: Predictor, records: list[dict[str, Any]], labels: list[str]
) -> list[float]:
    """Each record's score of its label, as the model itself computes it."""
    estimator = predictor.bundle.estimator
    model = estimator[-1]
    prepared = estimator[:-1].transform(predictor.inputs(records).model_input)
    classes = [predictor.classes.index(label) for label in labels]
    rows = np.arange(len(records))
    if hasattr(model, "coef_"):
        decision = model.decision_function(prepared)
        if decision.ndim == 1:  # two classes: the log-odds of the second
            return list(np.where(np.array(classes) == 1, decision, -decision))
        return list(decision[rows, classes])
    return list(model.predict_proba(prepared)[rows, classes])


def check_exact(
    url: str, predictor: Predictor, records: list[dict[str, Any]], kind: str
) -> list[dict[str, Any]]:
    response = predict(url, {"records": records, "explain": True})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = local_scores(predictor, records, [p["label"] for p in predictions])
    for prediction, score in zip(predictions, expected, strict=True):
        explanation = prediction["explanation"]
        assert explanation["score_kind"] == kind
        assert list(explanation["contributions"]) == predictor.features  # schema order
        total = explanation["base"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(score, abs=EXACT)
        assert explanation["score"] == pytest.approx(score, abs=EXACT)
        if kind == "probability":
            assert explanation["score"] == pytest.approx(
                prediction["probabilities"][prediction["label"]], abs=1e-6
            )
    return list(predictions)


def test_wine_explanations_add_up_to_the_decision_function(
    api_url: str, trained_home: Path, metadata: dict[str, Any], median_record: dict[str, float]
) -> None:
    predictor = served_model(trained_home, metadata)
    high = {f["name"]: f["max"] for f in metadata["feature_schema"]["features"]}
    low = {f["name"]: f["min"] for f in metadata["feature_schema"]["features"]}
    check_exact(api_url, predictor, [median_record, high, low], "logit")


def test_without_explain_the_answer_has_no_explanation(
    api_url: str, median_record: dict[str, float]
) -> None:
    for body in ({"records": [median_record]}, {"records": [median_record], "explain": False}):
        response = predict(api_url, body)
        assert response.status_code == 200, response.text
        assert "explanation" not in response.json()["predictions"][0]


MIXED_RECORDS: list[dict[str, Any]] = [
    {CHARGES: 70.5, CALLS: 3, PAPERLESS: True, PLAN: "basic", REGION: "north", TENURE: 12},
    # Blanks where training had them, an unseen region, the rare plan.
    {CHARGES: None, CALLS: 0, PAPERLESS: None, PLAN: "legacy", REGION: "mars", TENURE: 60},
    {CALLS: 8, PLAN: "premium", TENURE: 2},
]


def test_mixed_explanations_add_up_to_the_log_odds(
    mixed_api_url: str, mixed_home: Path, mixed_metadata: dict[str, Any]
) -> None:
    predictor = served_model(mixed_home, mixed_metadata)
    check_exact(mixed_api_url, predictor, MIXED_RECORDS, "logit")


def test_forest_explanations_add_up_to_the_probability(forest_url: str, forest_home: Path) -> None:
    metadata = requests.get(f"{forest_url}/metadata", timeout=10).json()
    predictor = served_model(forest_home, metadata)
    predictions = check_exact(forest_url, predictor, MIXED_RECORDS, "probability")
    # Path contributions move the class's share from the root's; the base is that share.
    assert all(0.0 < p["explanation"]["base"] < 1.0 for p in predictions)


@pytest.mark.parametrize(
    ("extra", "kind"),
    [({"explain": "yes"}, "bool_type"), ({"explain": 1}, "bool_type")],
)
def test_a_bad_explain_gets_400_naming_it(
    api_url: str, median_record: dict[str, float], extra: dict[str, Any], kind: str
) -> None:
    response = predict(api_url, {"records": [median_record], **extra})
    assert response.status_code == 400, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["explain"]
    assert detail["type"] == kind


def test_a_bad_record_with_explain_still_names_the_record_field(
    api_url: str, median_record: dict[str, float]
) -> None:
    record = {**median_record, "alcohol": "strong"}
    response = predict(api_url, {"records": [record], "explain": True})
    assert response.status_code == 400
    assert [d["loc"] for d in response.json()["detail"]] == [["records", 0, "alcohol"]]


def test_an_unscorable_record_with_explain_is_refused_by_name(
    api_url: str, median_record: dict[str, float]
) -> None:
    # Each value is finite, their weighted sum is not.
    record = dict.fromkeys(median_record, 1.7e308)
    response = predict(api_url, {"records": [median_record, record], "explain": True})
    assert response.status_code == 400
    [detail] = response.json()["detail"]
    assert (detail["loc"], detail["type"]) == (["records", 1], "unscorable")


def test_the_openapi_document_describes_explain(api_url: str) -> None:
    spec = requests.get(f"{api_url}/docs.json", timeout=10).json()
    schemas = spec["components"]["schemas"]
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    request_schema = body["schema"]
    if "$ref" in request_schema:
        request_schema = schemas[request_schema["$ref"].rsplit("/", 1)[1]]
    assert request_schema["properties"]["explain"]["type"] == "boolean"
    assert request_schema["properties"]["explain"]["default"] is False
    explanation = schemas["Explanation"]
    assert set(explanation["required"]) == {"score_kind", "score", "base", "contributions"}
