"""The "Explain" option of the single-prediction form, driven by AppTest against the real
services (the wine model and the mixed-data model): the bars are the service's contributions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import requests
from streamlit.testing.v1 import AppTest

from tests.ui.apps import start_app
from ui.form import readable_label
from ui.single_tab import EXPLAIN_KEY, MAX_EXPLAINED

pytestmark = pytest.mark.ui


def predict(at: AppTest, *, explain: bool) -> AppTest:
    at.checkbox(key=EXPLAIN_KEY).set_value(explain)
    next(b for b in at.button if b.label == "Predict").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def charts(at: AppTest) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Each chart's Vega-Lite spec and its data (Streamlit sends the data as Arrow)."""
    return [
        (json.loads(e.proto.spec), pa.ipc.open_stream(e.proto.data.data).read_pandas())
        for e in at.main.get("vega_lite_chart")
    ]


def form_record(at: AppTest) -> dict[str, Any]:
    """The record the form sends, as the page built it (its last prediction's state)."""
    record: dict[str, Any] = at.session_state["cepage.last_prediction"]["record"]
    return record


def explained(url: str, record: dict[str, Any]) -> dict[str, Any]:
    body = {"records": [record], "explain": True}
    response = requests.post(f"{url}/predict", json=body, timeout=30)
    response.raise_for_status()
    prediction: dict[str, Any] = response.json()["predictions"][0]
    return prediction


@pytest.mark.parametrize("service", ["api_url", "mixed_api_url"])
def test_explain_shows_the_services_contributions_as_bars(
    service: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, app_path: Path
) -> None:
    url: str = request.getfixturevalue(service)
    at = predict(start_app(monkeypatch, url, app_path), explain=True)
    expected = explained(url, form_record(at))
    explanation = expected["explanation"]
    (_, probabilities), (spec, bars) = charts(at)
    assert list(probabilities.columns) == ["class", "probability"]  # first, as before
    assert spec["encoding"]["x"]["field"] == "contribution"
    shown = dict(zip(bars["feature"], bars["contribution"], strict=True))
    ranked = sorted(explanation["contributions"].items(), key=lambda item: -abs(item[1]))
    assert list(shown) == [readable_label(name) for name, _ in ranked[:MAX_EXPLAINED]]
    for name, value in ranked:
        assert shown[readable_label(name)] == pytest.approx(value, abs=1e-12)
    towards = bars["contribution"] >= 0
    assert list(bars["direction"]) == ["towards" if t else "away" for t in towards]
    [caption] = [str(c.value) for c in at.main.caption if "add up to" in str(c.value)]
    assert f"{explanation['base']:.3f}" in caption
    assert f"{explanation['score']:.3f}" in caption
    assert f"**Why {expected['label']}?**" in " ".join(str(m.value) for m in at.markdown)


def test_without_explain_there_is_only_the_probability_chart(
    monkeypatch: pytest.MonkeyPatch, api_url: str, app_path: Path
) -> None:
    at = predict(start_app(monkeypatch, api_url, app_path), explain=False)
    assert len(charts(at)) == 1
    assert not any("Why" in str(m.value) for m in at.markdown)
