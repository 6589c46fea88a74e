"""The UI with a model trained on raw tabular data (tests/support/mixed_data.py): every feature
kind, blanks and text, trained by the real CLI and served by a real `bentoml serve`.

The page (through AppTest) and batch scoring (ui.batch) against that service: select boxes for
categories and a yes/no that may be empty, an optional number left empty, a CSV with blanks and
text scored as written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from streamlit.testing.v1 import AppTest

from tests.support.mixed_data import (
    CALLS,
    CHARGES,
    PAPERLESS,
    PLAN,
    REGION,
    TARGET,
    TENURE,
    customers,
)
from tests.ui.traffic import predict_requests
from ui.batch import LABEL_COLUMN, OUT_OF_RANGE_COLUMN, PROBABILITY_PREFIX, score_frame
from ui.batch import read_csv as read_batch
from ui.client import ApiClient
from ui.form import EMPTY_LABEL, describe_feature, readable_label
from ui.responses import Metadata, Record, Value

pytestmark = pytest.mark.ui

TIMEOUT = 60


@pytest.fixture
def mixed_app(monkeypatch: pytest.MonkeyPatch, mixed_api_url: str, app_path: Path) -> AppTest:
    monkeypatch.setenv("CEPAGE_API_URL", mixed_api_url)
    at = AppTest.from_file(str(app_path), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def by_feature(widgets: Any) -> dict[str, Any]:
    """Form widgets by feature name (their keys end with it); other widgets left out."""
    return {str(w.key).rsplit(":", 1)[1]: w for w in widgets if str(w.key).startswith("feature:")}


def service_prediction(
    api_url: str, records: Sequence[Mapping[str, Value]]
) -> list[dict[str, Any]]:
    response = requests.post(f"{api_url}/predict", json={"records": records}, timeout=30)
    response.raise_for_status()
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def feature_csv(mixed_csv: Path) -> bytes:
    """The training CSV without its label column: what a person would send for scoring."""
    frame = pd.read_csv(mixed_csv, dtype=str, keep_default_na=False)
    return frame.drop(columns=[TARGET]).to_csv(index=False).encode()


def expected_records(rows: int) -> list[Record]:
    """The first training rows as the API's JSON values, built from the data, not the UI."""
    frame = customers().drop(columns=[TARGET]).head(rows)
    records: list[Record] = []
    for row in frame.to_dict(orient="records"):
        records.append(
            {
                CHARGES: None if math.isnan(row[CHARGES]) else float(row[CHARGES]),
                CALLS: int(row[CALLS]),
                PAPERLESS: None if pd.isna(row[PAPERLESS]) else row[PAPERLESS] == "yes",
                PLAN: str(row[PLAN]),
                REGION: None if pd.isna(row[REGION]) else str(row[REGION]),
                TENURE: int(row[TENURE]),
            }
        )
    return records


def test_the_schema_is_version_2_with_every_kind(mixed_served: Metadata) -> None:
    kinds = {f.name: (f.kind, f.nullable) for f in mixed_served.schema.features}
    assert kinds[CHARGES] == ("number", True)
    assert kinds[CALLS] == ("integer", False)
    assert kinds[PAPERLESS] == ("boolean", True)
    assert kinds[PLAN] == ("category", False)
    assert kinds[REGION] == ("category", True)


def test_the_form_has_a_widget_per_kind(mixed_app: AppTest, mixed_served: Metadata) -> None:
    numbers = by_feature(mixed_app.number_input)
    choices = by_feature(mixed_app.selectbox)
    assert sorted([*numbers, *choices]) == sorted(mixed_served.schema.names)
    features = {f.name: f for f in mixed_served.schema.features}
    # An optional number starts empty; an integer starts at its median, whole.
    assert numbers[CHARGES].value is None
    assert numbers[CALLS].value == round(features[CALLS].median or 0)
    assert isinstance(numbers[CALLS].value, int)
    # A category offers its training values, the most frequent chosen; empty only when nullable.
    assert choices[PLAN].options == list(features[PLAN].categories)
    assert choices[PLAN].value == features[PLAN].categories[0]
    assert choices[REGION].options == [*features[REGION].categories, EMPTY_LABEL]
    # A yes/no that may be empty: yes / no / empty.
    assert choices[PAPERLESS].options == ["yes", "no", EMPTY_LABEL]
    assert choices[PLAN].label == readable_label(PLAN)
    assert "A category." in choices[PLAN].help


def test_the_sidebar_lists_each_feature(mixed_app: AppTest, mixed_served: Metadata) -> None:
    [features] = mixed_app.sidebar.expander
    text = " ".join(str(m.value) for m in features.markdown)
    for feature in mixed_served.schema.features:
        assert describe_feature(feature) in text
    assert "Plan type: category: basic, standard, premium, legacy; required" in text


def test_a_chosen_category_and_an_empty_number_are_scored(
    mixed_app: AppTest, mixed_served: Metadata, mixed_api_url: str
) -> None:
    choices = by_feature(mixed_app.selectbox)
    choices[PLAN].select("premium")
    choices[REGION].select_index(len(choices[REGION].options) - 1)  # the empty choice
    choices[PAPERLESS].select(True)
    numbers = by_feature(mixed_app.number_input)
    numbers[CALLS].set_value(5)
    assert numbers[CHARGES].value is None  # left empty
    next(b for b in mixed_app.button if b.label == "Predict").click()
    mixed_app.run()
    assert not mixed_app.exception, [e.value for e in mixed_app.exception]
    assert not mixed_app.error, [e.value for e in mixed_app.error]

    tenure = next(f for f in mixed_served.schema.features if f.name == TENURE)
    record: Record = {
        CHARGES: None,
        CALLS: 5,
        PAPERLESS: True,
        PLAN: "premium",
        REGION: None,
        TENURE: round(tenure.median or 0),
    }
    [expected] = service_prediction(mixed_api_url, [record])
    [result] = [str(s.value) for s in mixed_app.success if str(s.value).startswith("Predicted")]
    assert f"**{expected['label']}**" in result
    assert f"{expected['probabilities'][expected['label']]:.1%}" in result
    assert not mixed_app.warning


def test_the_mixed_csv_is_scored_as_written(
    mixed_client: ApiClient, mixed_served: Metadata, mixed_api_url: str, mixed_csv: Path
) -> None:
    frame = read_batch(feature_csv(mixed_csv))
    assert (frame[CHARGES] == "").sum() > 0 and (frame[REGION] == "").sum() > 0, "no blanks"
    scored = score_frame(mixed_client, frame, mixed_served.schema, mixed_served.max_records)
    assert len(scored) == len(frame)
    # The answers are the service's for the same rows built independently as JSON values.
    rows = 40
    expected = service_prediction(mixed_api_url, expected_records(rows))
    assert list(scored[LABEL_COLUMN].head(rows)) == [p["label"] for p in expected]
    for cls in mixed_served.schema.classes:
        column = scored[f"{PROBABILITY_PREFIX}{cls}"].head(rows)
        assert list(column) == pytest.approx([p["probabilities"][cls] for p in expected])
    # The inputs come back as they were written: blanks stay blank, text stays text.
    pd.testing.assert_frame_equal(scored[mixed_served.schema.names], frame)


def test_an_unseen_category_is_scored_and_flagged(
    mixed_client: ApiClient, mixed_served: Metadata, mixed_csv: Path
) -> None:
    frame = read_batch(feature_csv(mixed_csv)).head(3).copy()
    frame.loc[1, PLAN] = "gold"
    scored = score_frame(mixed_client, frame, mixed_served.schema, mixed_served.max_records)
    assert PLAN in scored[OUT_OF_RANGE_COLUMN].iloc[1].split(", ")
    assert PLAN not in scored[OUT_OF_RANGE_COLUMN].iloc[0].split(", ")


def test_a_blank_where_a_value_is_needed_is_refused_before_sending(
    mixed_app: AppTest, mixed_api_url: str, mixed_csv: Path
) -> None:
    frame = read_batch(feature_csv(mixed_csv)).head(6).copy()
    frame.loc[[2, 4], PLAN] = ""
    frame.loc[3, CALLS] = "many"
    service_prediction(mixed_api_url, expected_records(1))  # the request count exists
    before = predict_requests(mixed_api_url)
    data = frame.to_csv(index=False).encode()
    mixed_app.file_uploader[0].set_value(("customers.csv", data, "text/csv"))
    mixed_app.run()
    assert not mixed_app.exception
    [error] = [str(e.value) for e in mixed_app.error]
    assert f"{PLAN!r} (rows 4, 6): empty, but the model needs a value" in error
    assert f"{CALLS!r} (rows 5): 'many' is not a number" in error
    assert not mixed_app.main.dataframe
    assert predict_requests(mixed_api_url) == before, "a request was sent for an invalid file"


def test_a_csv_with_blanks_and_text_is_scored_on_the_page(
    mixed_app: AppTest, mixed_csv: Path
) -> None:
    data = feature_csv(mixed_csv)
    mixed_app.file_uploader[0].set_value(("customers.csv", data, "text/csv"))
    mixed_app.run()
    assert not mixed_app.exception
    assert not mixed_app.error, [e.value for e in mixed_app.error]
    [table] = mixed_app.main.dataframe
    scored = table.value
    rows = len(read_batch(data))
    assert len(scored) == rows
    assert set(scored[LABEL_COLUMN]) <= {"left", "stayed"}
    assert f"Scored {rows} rows" in " ".join(str(s.value) for s in mixed_app.success)
