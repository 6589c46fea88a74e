"""Raw tabular data end to end: text categories, blanks, integers, yes/no columns, a text label.

Two data sets go through the real chain (the real CLI, a real MLflow store, a real `bentoml
serve` over HTTP): one generated here with every feature kind, punctuation in column names and a
rare category (tests/support/mixed_data.py), and the Palmer penguins, a real public data set
with text categories and blanks that ships inside a PyPI package (palmerpenguins, dev lock).
Nothing is encoded by hand: the CSVs are scored as exported.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from tests.support.mixed_data import (
    CALLS,
    CHARGES,
    PAPERLESS,
    PLAN,
    RARE_PLAN,
    REGION,
    TENURE,
)
from tests.support.procs import bentoml_serve, cepage, stack_env

pytestmark = pytest.mark.integration


def predict(url: str, records: list[dict[str, Any]]) -> requests.Response:
    return requests.post(f"{url}/predict", json={"records": records}, timeout=30)


def record(**values: Any) -> dict[str, Any]:
    """A valid record of the generated data, with ``values`` replacing some fields."""
    base = {
        CHARGES: 70.5,
        CALLS: 3,
        PAPERLESS: True,
        PLAN: "basic",
        REGION: "north",
        TENURE: 12,
    }
    base.update(values)
    return {k: v for k, v in base.items() if v is not ...}


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one series on the service's /metrics (0 when absent)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_schema_says_each_feature_kind(mixed_metadata: dict[str, Any]) -> None:
    schema = mixed_metadata["feature_schema"]
    kinds = {f["name"]: (f["kind"], f["nullable"]) for f in schema["features"]}
    assert kinds == {
        CHARGES: ("number", True),
        CALLS: ("integer", False),
        PAPERLESS: ("boolean", True),
        PLAN: ("category", False),
        REGION: ("category", True),
        TENURE: ("integer", False),
    }
    plan = next(f for f in schema["features"] if f["name"] == PLAN)
    assert set(plan["categories"]) == {"basic", "standard", "premium", RARE_PLAN}
    assert schema["classes"] == ["left", "stayed"]


def test_raw_records_with_blanks_and_text_are_scored(mixed_api_url: str) -> None:
    response = predict(
        mixed_api_url,
        [
            record(),
            record(**{CHARGES: None, PAPERLESS: None, REGION: None}),  # blanks as null
            record(**{CHARGES: ..., REGION: ...}),  # blanks as absent keys
            record(**{PLAN: RARE_PLAN, PAPERLESS: False}),
        ],
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 4
    for prediction in predictions:
        assert prediction["label"] in {"left", "stayed"}
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
        assert prediction["out_of_range"] == []


def test_an_unseen_category_is_scored_flagged_and_counted(mixed_api_url: str) -> None:
    before = metric(mixed_api_url, "cepage_unseen_category_total", feature=PLAN)
    response = predict(mixed_api_url, [record(**{PLAN: "platinum"})])
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["out_of_range"] == [PLAN]
    assert metric(mixed_api_url, "cepage_unseen_category_total", feature=PLAN) == before + 1


def test_blanks_are_counted_per_feature(mixed_api_url: str) -> None:
    before = metric(mixed_api_url, "cepage_feature_missing_total", feature=REGION)
    assert predict(mixed_api_url, [record(**{REGION: None})] * 3).status_code == 200
    assert metric(mixed_api_url, "cepage_feature_missing_total", feature=REGION) == before + 3
    share = metric(mixed_api_url, "cepage_feature_reference_missing_ratio", feature=REGION)
    assert share == pytest.approx(30 / 400)


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        (CHARGES, "70", "float_type"),
        (CALLS, "2", "float_type"),
        (CALLS, None, "missing_value"),
        (PAPERLESS, "yes", "bool_type"),
        (PAPERLESS, 1, "bool_type"),
        (PLAN, 3, "string_type"),
        (PLAN, None, "missing_value"),
    ],
)
def test_a_wrong_type_is_a_400_naming_the_field(
    mixed_api_url: str, field: str, value: Any, kind: str
) -> None:
    response = predict(mixed_api_url, [record(**{field: value})])
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert [(d["loc"], d["type"]) for d in detail] == [(["records", 0, field], kind)]


def test_the_openapi_document_has_each_feature_type(mixed_api_url: str) -> None:
    spec = requests.get(f"{mixed_api_url}/docs.json", timeout=10).json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    items = body["schema"]["properties"]["records"]["items"]
    props = items["properties"]
    assert props[CALLS] == {
        "type": "number",
        "x-cepage-kind": "integer",
        "description": "Training range: whole numbers 0 to 6.",
    }
    assert {"type": "boolean"} in props[PAPERLESS]["anyOf"]
    assert {"type": "null"} in props[PAPERLESS]["anyOf"]
    seen = props[PLAN]["anyOf"][0]
    assert seen["type"] == "string" and RARE_PLAN in seen["enum"]
    assert sorted(items["required"]) == sorted([CALLS, PLAN, TENURE])
    assert items["additionalProperties"] is False
    example = body["schema"]["properties"]["records"]["examples"][0]
    assert predict(mixed_api_url, example).status_code == 200


def test_the_cli_scores_the_raw_csv_and_json(
    mixed_home: Path, mixed_csv: Path, mixed_api_url: str
) -> None:
    env = stack_env(mixed_home)
    done = cepage("predict", "--csv", str(mixed_csv), "--url", mixed_api_url, env=env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert len(answer["predictions"]) == len(pd.read_csv(mixed_csv))
    one = json.dumps(record(**{REGION: None}))
    done = cepage("predict", "--json", one, "--url", mixed_api_url, env=env)
    assert done.returncode == 0, done.stderr
    bad = mixed_csv.parent / "bad.csv"
    bad.write_text(f"{PLAN},{CALLS}\nbasic,two\n")
    done = cepage("predict", "--csv", str(bad), "--url", mixed_api_url, env=env)
    assert done.returncode == 2
    assert f"row 2, column '{CALLS}': 'two' is not a number" in done.stderr


def test_penguins_from_pypi_train_gate_both_models_and_serve(tmp_path: Path) -> None:
    """The real public data set, as shipped: text species, islands and sex; blanks."""
    data = resources.files("palmerpenguins") / "data" / "penguins.csv"
    csv = tmp_path / "penguins.csv"
    csv.write_bytes(data.read_bytes())
    raw = pd.read_csv(csv)
    assert raw["sex"].isna().any()
    assert not pd.api.types.is_numeric_dtype(raw["island"])
    env = stack_env(tmp_path)
    first = cepage("retrain", "--data", str(csv), "--target", "species", "--no-build", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Features: 3 category" not in first.stdout  # year is an integer, not a category
    assert "2 category" in first.stdout
    # The forest on the same rows: the gate scores both versions on the same held-out rows.
    forest = cepage(
        "retrain", "--data", str(csv), "--target", "species", "--model", "forest",
        "--no-build", env=env,
    )  # fmt: skip
    assert forest.returncode in (0, 3), forest.stdout + forest.stderr
    assert "champion's" in forest.stdout
    with bentoml_serve(tmp_path) as url:
        rows = raw.drop(columns=["species"]).head(8)
        records = [
            {str(k): (None if pd.isna(v) else v) for k, v in row.items()}
            for row in rows.to_dict(orient="records")
        ]
        response = predict(url, records)
        assert response.status_code == 200, response.text
        labels = [p["label"] for p in response.json()["predictions"]]
        assert labels.count("Adelie") >= 6  # the first rows of the file are Adelie penguins
