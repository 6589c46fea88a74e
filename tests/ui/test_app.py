"""The Streamlit page (ui/app.py) driven by AppTest against the real service."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import NumberInput

import ui.single_tab
from tests.ui.traffic import predict_requests
from ui.batch import LABEL_COLUMN, PROBABILITY_PREFIX, to_csv
from ui.form import (
    InputSpec,
    NumberSpec,
    default_value,
    input_spec,
    readable_label,
    training_range,
)
from ui.responses import Feature, Metadata

pytestmark = pytest.mark.ui

TIMEOUT = 60


def start(app_path: Path) -> AppTest:
    at = AppTest.from_file(str(app_path), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, api_url: str, app_path: Path) -> AppTest:
    monkeypatch.setenv("CEPAGE_API_URL", api_url)
    return start(app_path)


def feature_inputs(at: AppTest) -> dict[str, NumberInput]:
    """The form's number inputs by feature name (their keys end with it)."""
    return {str(n.key).rsplit(":", 1)[1]: n for n in at.number_input}


def number(widget: NumberInput) -> float:
    assert widget.value is not None
    return float(widget.value)


def form_record(at: AppTest) -> dict[str, float]:
    return {name: number(widget) for name, widget in feature_inputs(at).items()}


def service_label(api_url: str, record: Mapping[str, object]) -> dict[str, Any]:
    response = requests.post(f"{api_url}/predict", json={"records": [record]}, timeout=30)
    response.raise_for_status()
    prediction: dict[str, Any] = response.json()["predictions"][0]
    return prediction


def texts(elements: Any) -> list[str]:
    return [str(e.value) for e in elements]


def predict(at: AppTest) -> AppTest:
    next(b for b in at.button if b.label == "Predict").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_form_has_one_input_per_feature(app: AppTest, served: Metadata) -> None:
    inputs = feature_inputs(app)
    assert sorted(inputs) == sorted(served.schema.names)
    for feature in served.schema.features:
        widget = inputs[feature.name]
        spec = input_spec(feature)
        assert isinstance(spec, NumberSpec)
        low, high, _ = training_range(feature)
        assert widget.label == readable_label(feature.name)
        assert widget.value == spec.value
        assert widget.min is not None
        assert widget.max is not None
        assert widget.min < low or widget.min == 0
        assert widget.max > high
    assert not app.error, texts(app.error)


def test_the_sidebar_shows_the_model(app: AppTest, served: Metadata, api_url: str) -> None:
    assert not app.sidebar.text_input, "the API address is editable"
    assert f"`{api_url}`" in " ".join(texts(app.sidebar.caption))
    sidebar = " ".join(texts(app.sidebar.markdown) + texts(app.sidebar.caption))
    for expected in (served.name, served.version, served.run_id, served.bento_model):
        assert expected in sidebar
    for name, value in served.metrics.items():
        assert f"{readable_label(name)}: `{value:.4f}`" in sidebar


def test_submitting_shows_the_predicted_label(app: AppTest, api_url: str) -> None:
    expected = service_label(api_url, form_record(app))
    predict(app)
    [result] = [s for s in texts(app.success) if s.startswith("Predicted")]
    assert f"**{expected['label']}**" in result
    assert f"{expected['probabilities'][expected['label']]:.1%}" in result
    assert not app.warning
    assert not app.error, texts(app.error)
    assert [e for e in app.main.get("vega_lite_chart")], "no probability chart"


def test_out_of_range_values_are_flagged(app: AppTest, served: Metadata, api_url: str) -> None:
    feature = served.schema.features[-1]
    widget = feature_inputs(app)[feature.name]
    assert widget.max is not None
    widget.set_value(widget.max)
    expected = service_label(api_url, {**form_record(app), feature.name: float(widget.max)})
    predict(app)
    assert any(f"**{expected['label']}**" in s for s in texts(app.success))
    [warning] = texts(app.warning)
    assert readable_label(feature.name) in warning
    assert "Outside the training range" in warning
    assert expected["out_of_range"] == [feature.name]


def test_feedback_is_recorded(app: AppTest, served: Metadata, api_url: str) -> None:
    predicted = service_label(api_url, form_record(app))["label"]
    predict(app)
    other = next(c for c in served.schema.classes if c != predicted)
    app.selectbox[0].select(other)
    next(b for b in app.button if b.label == "Send feedback").click()
    app.run()
    assert not app.exception
    assert not app.error, texts(app.error)
    recorded = [s for s in texts(app.success) if s.startswith("Feedback recorded")]
    assert recorded == [
        f"Feedback recorded as incorrect: predicted {predicted}, true {other} "
        f"(model version {served.version})."
    ]
    # One feedback per prediction: the service refuses a second one, and the page says why.
    app.selectbox[0].select(predicted)
    next(b for b in app.button if b.label == "Send feedback").click()
    app.run()
    assert not app.exception
    assert any("already been given feedback" in e for e in texts(app.error)), texts(app.error)


def test_a_csv_upload_is_scored(app: AppTest, served: Metadata, api_url: str) -> None:
    ranges = {f.name: training_range(f) for f in served.schema.features}
    rows: list[dict[str, object]] = [
        {name: low - (high - low) - 1 for name, (low, high, _) in ranges.items()},
        {name: high + (high - low) + 1 for name, (low, high, _) in ranges.items()},
    ]
    rows += [{f.name: default_value(f) for f in served.schema.features}] * 3  # whole integers
    frame = pd.DataFrame(rows, columns=served.schema.names)
    app.file_uploader[0].set_value(("wines.csv", to_csv(frame), "text/csv"))
    app.run()
    assert not app.exception
    assert not app.error, texts(app.error)
    [table] = app.main.dataframe
    scored = table.value
    assert len(scored) == len(frame)
    labels = [service_label(api_url, row)["label"] for row in rows]
    assert list(scored[LABEL_COLUMN]) == labels
    for cls in served.schema.classes:
        assert f"{PROBABILITY_PREFIX}{cls}" in scored.columns
    assert f"Scored {len(frame)} rows" in " ".join(texts(app.success))
    assert any("2 rows have values outside" in w for w in texts(app.warning))
    assert "Download the scored CSV" in [b.label for b in app.download_button]


def test_a_csv_with_wrong_columns_is_refused(app: AppTest, served: Metadata, api_url: str) -> None:
    dropped = served.schema.names[0]
    medians = {f.name: default_value(f) for f in served.schema.features}
    frame = pd.DataFrame([medians]).drop(columns=[dropped])
    frame["colour"] = 3.0
    service_label(api_url, medians)  # count exists
    before = predict_requests(api_url)
    app.file_uploader[0].set_value(("bad.csv", to_csv(frame), "text/csv"))
    app.run()
    assert not app.exception
    [error] = texts(app.error)
    assert f"missing columns: {dropped!r}" in error
    assert "unexpected columns: 'colour'" in error
    assert not app.main.dataframe
    assert predict_requests(api_url) == before, "a request was sent for an invalid file"


def test_api_down_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, dead_url: str, app_path: Path
) -> None:
    monkeypatch.setenv("CEPAGE_API_URL", dead_url)
    at = start(app_path)
    [error] = texts(at.error)
    assert error == f"The API at {dead_url} is not reachable: connection refused."
    assert not at.number_input


def test_without_a_url_the_page_refuses(monkeypatch: pytest.MonkeyPatch, app_path: Path) -> None:
    monkeypatch.delenv("CEPAGE_API_URL", raising=False)
    at = start(app_path)
    [error] = texts(at.error)
    assert "CEPAGE_API_URL" in error
    assert not at.text_input and not at.sidebar.text_input
    assert not at.number_input


def test_an_invalid_url_is_explained(monkeypatch: pytest.MonkeyPatch, app_path: Path) -> None:
    monkeypatch.setenv("CEPAGE_API_URL", "localhost:3000")
    at = start(app_path)
    [error] = texts(at.error)
    assert "is not a valid API URL" in error


def test_a_bad_setting_is_explained(
    monkeypatch: pytest.MonkeyPatch, api_url: str, app_path: Path
) -> None:
    monkeypatch.setenv("CEPAGE_API_URL", api_url)
    monkeypatch.setenv("CEPAGE_API_TIMEOUT_SECONDS", "soon")
    at = start(app_path)
    [error] = texts(at.error)
    assert "configuration is invalid" in error
    assert "CEPAGE_API_TIMEOUT_SECONDS" in error


def test_an_unexpected_bug_is_a_sentence_not_a_traceback(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(feature: Feature) -> InputSpec:
        raise RuntimeError(f"cannot lay out {feature.name}")

    monkeypatch.setattr(ui.single_tab, "input_spec", broken)  # where the page calls it
    app.run()
    assert not app.exception
    [error] = texts(app.error)
    assert error.startswith("Something went wrong in the UI (RuntimeError: cannot lay out ")


def test_a_csv_over_the_row_limit_is_refused_before_any_request(
    app: AppTest, served: Metadata, api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A visitor's upload must not become an unbounded number of model calls from inside."""
    monkeypatch.setenv("CEPAGE_UI_MAX_BATCH_ROWS", "2")
    medians = {f.name: default_value(f) for f in served.schema.features}
    frame = pd.DataFrame([medians] * 3, columns=served.schema.names)
    service_label(api_url, medians)  # count exists
    before = predict_requests(api_url)
    app.file_uploader[0].set_value(("big.csv", to_csv(frame), "text/csv"))
    app.run()
    assert not app.exception
    [error] = texts(app.error)
    assert "The file has 3 rows; at most 2 are scored at once here" in error
    assert predict_requests(api_url) == before


def test_the_sidebar_shows_what_production_answered_per_version(
    monkeypatch: pytest.MonkeyPatch, api_url: str, app_path: Path, median_record: dict[str, float]
) -> None:
    """Counts from the service's own counters: predictions, the labelled share, the accuracy
    of the feedback; never anyone's inputs (the page is public)."""
    answered = service_label(api_url, median_record)
    feedback = {"prediction_id": answered["id"], "label": answered["label"]}
    requests.post(f"{api_url}/feedback", json=feedback, timeout=30).raise_for_status()
    monkeypatch.setenv("CEPAGE_API_URL", api_url)
    at = start(app_path)
    assert "In production" in texts(at.sidebar.subheader)
    (table,) = at.sidebar.dataframe
    rows = table.value.to_dict(orient="records")
    assert [r["version"] for r in rows] == [answered_version(api_url)]
    assert rows[0]["predictions"] >= 1 and rows[0]["accuracy"] != "—"
    assert "alcohol" not in table.value.to_string()


def answered_version(api_url: str) -> str:
    return str(requests.get(f"{api_url}/metadata", timeout=10).json()["version"])


def test_the_drift_reports_link_comes_from_the_deployment_only(
    monkeypatch: pytest.MonkeyPatch, api_url: str, app_path: Path
) -> None:
    monkeypatch.setenv("CEPAGE_API_URL", api_url)
    monkeypatch.delenv("CEPAGE_DRIFT_REPORTS_URL", raising=False)
    without = start(app_path)
    assert not [m for m in without.sidebar.markdown if "Drift reports" in m.value]
    monkeypatch.setenv("CEPAGE_DRIFT_REPORTS_URL", "https://mlflow.example.org/#/experiments/7")
    linked = start(app_path)
    (link,) = [m.value for m in linked.sidebar.markdown if "Drift reports" in m.value]
    assert "[Drift reports](https://mlflow.example.org/#/experiments/7)" in link
    # A link a visitor would click: no other scheme than http(s).
    monkeypatch.setenv("CEPAGE_DRIFT_REPORTS_URL", "javascript:alert(1)")
    refused = AppTest.from_file(str(app_path), default_timeout=TIMEOUT).run()
    assert any("must be an http(s) URL" in e.value for e in refused.error)
