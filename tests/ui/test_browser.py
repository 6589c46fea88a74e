"""The real page in a real browser: `streamlit run ui/app.py` driven through Chromium.

The browser is `CEPAGE_CHROMIUM` when set, else the first Chromium or Chrome found on PATH or in
macOS's /Applications, else the one `playwright install chromium` downloaded (docs/ui.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts.chromium import ARGS as CHROMIUM_ARGS
from scripts.chromium import MISSING as NO_CHROMIUM
from scripts.chromium import locate as locate_chromium
from tests.support.procs import BIN, ROOT, free_port, require, running
from ui.form import default_value, number_spec, readable_label, training_range
from ui.responses import Feature, Metadata

pytestmark = pytest.mark.ui

WAIT_MS = 60_000


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The Chromium to drive; none: skip (fail with CI=true) saying how to get one."""
    found = locate_chromium()
    require(found is not None, NO_CHROMIUM)
    assert found is not None
    require(found.is_file(), f"CEPAGE_CHROMIUM={found} is not a file")
    return found


@pytest.fixture
def ui_url(chromium: Path, api_url: str, tmp_path: Path) -> Iterator[str]:
    """A real `streamlit run ui/app.py` pointed at the real service; yields its URL."""
    with _streamlit(api_url, tmp_path / "streamlit.log") as url:
        yield url


@pytest.fixture
def mixed_ui_url(chromium: Path, mixed_api_url: str, tmp_path: Path) -> Iterator[str]:
    """The same page pointed at the service of the model trained on raw mixed data."""
    with _streamlit(mixed_api_url, tmp_path / "streamlit.log") as url:
        yield url


@contextmanager
def _streamlit(api_url: str, log: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "CEPAGE_API_URL": api_url,
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    url = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "streamlit"), "run", str(ROOT / "ui" / "app.py")]
    argv += ["--server.headless", "true", "--server.port", str(port)]
    argv += ["--server.address", "127.0.0.1"]
    with running(argv, log=log, ready_url=f"{url}/_stcore/health", env=env):
        yield url


def test_predict_in_a_real_browser(
    chromium: Path, ui_url: str, api_url: str, served: Metadata, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    # Change the first feature to its training maximum; the service says what to expect.
    feature = served.schema.features[0]
    record = {f.name: _form_default(f) for f in served.schema.features}
    spec = number_spec(feature)
    typed = spec.format % training_range(feature)[1]
    record[feature.name] = float(typed)
    expected = _service_prediction(api_url, record)
    target = readable_label(served.schema.target).lower()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(ui_url)
            field = page.get_by_label(spec.label, exact=True)
            field.wait_for(timeout=WAIT_MS)
            # The API address is shown, not editable: no text box anywhere on the page.
            sidebar = page.get_by_test_id("stSidebar")
            sidebar.get_by_text(api_url).wait_for(timeout=WAIT_MS)
            assert page.get_by_test_id("stTextInput").count() == 0
            assert page.get_by_role("textbox").count() == 0
            field.fill(typed)
            page.get_by_role("button", name="Predict").click()
            page.get_by_text(f"Predicted {target}: {expected['label']}").wait_for(timeout=WAIT_MS)
            page.get_by_role("button", name="Send feedback").wait_for(timeout=WAIT_MS)
            assert page.get_by_text("Traceback").count() == 0
            page.screenshot(path=str(tmp_path / "prediction.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "prediction.png").stat().st_size > 0


def test_mixed_data_form_in_a_real_browser(
    chromium: Path, mixed_ui_url: str, mixed_api_url: str, mixed_served: Metadata, tmp_path: Path
) -> None:
    """Pick a category in its select box, leave an optional number empty, predict."""
    from playwright.sync_api import sync_playwright

    features = {f.name: f for f in mixed_served.schema.features}
    category = next(f for f in features.values() if f.kind == "category" and not f.nullable)
    optional = next(f for f in features.values() if f.is_numeric and f.nullable)
    chosen = category.categories[-1]  # not the default (the most frequent)
    record = {name: default_value(f) for name, f in features.items()}
    record[category.name] = chosen
    record[optional.name] = None
    expected = _service_prediction(mixed_api_url, record)
    target = readable_label(mixed_served.schema.target).lower()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(mixed_ui_url)
            empty = page.get_by_label(readable_label(optional.name), exact=True)
            empty.wait_for(timeout=WAIT_MS)
            assert empty.input_value() == "", "an optional number does not start empty"
            box = page.get_by_role("combobox", name=readable_label(category.name), exact=True)
            box.click()
            page.get_by_role("option", name=chosen, exact=True).click()
            assert box.input_value() == chosen
            page.get_by_role("button", name="Predict").click()
            page.get_by_text(f"Predicted {target}: {expected['label']}").wait_for(timeout=WAIT_MS)
            page.get_by_text(
                f"(probability {expected['probabilities'][expected['label']]:.1%})"
            ).wait_for(timeout=WAIT_MS)
            assert page.get_by_text("Traceback").count() == 0
            page.screenshot(path=str(tmp_path / "mixed.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "mixed.png").stat().st_size > 0


def test_explanation_bars_in_a_real_browser(
    chromium: Path, ui_url: str, api_url: str, served: Metadata, tmp_path: Path
) -> None:
    """Tick *Explain*, predict: a second chart is drawn under the probabilities, with the
    service's base and score in its caption."""
    from playwright.sync_api import sync_playwright

    record = {f.name: _form_default(f) for f in served.schema.features}
    response = requests.post(
        f"{api_url}/predict", json={"records": [record], "explain": True}, timeout=30
    )
    response.raise_for_status()
    expected = response.json()["predictions"][0]
    explanation = expected["explanation"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(ui_url)
            page.get_by_role("button", name="Predict").wait_for(timeout=WAIT_MS)
            page.get_by_text("Explain", exact=True).click()
            page.get_by_role("button", name="Predict").click()
            page.get_by_text(f"Why {expected['label']}?").wait_for(timeout=WAIT_MS)
            page.get_by_text(f"Starting from {explanation['base']:.3f}", exact=False).wait_for(
                timeout=WAIT_MS
            )
            charts = page.get_by_test_id("stVegaLiteChart")
            charts.nth(1).wait_for(timeout=WAIT_MS)
            assert charts.count() == 2
            # Vega draws the bars on a canvas of its own: drawn, and not empty.
            # One bar per feature, drawn by Vega with the service's figure in its label.
            bars = charts.nth(1).locator('path[aria-roledescription="bar"]')
            bars.first.wait_for(timeout=WAIT_MS)
            labels = [bars.nth(i).get_attribute("aria-label") or "" for i in range(bars.count())]
            contributions = explanation["contributions"]
            assert len(labels) == len(contributions)
            for name, value in contributions.items():
                [label] = [t for t in labels if f"feature: {readable_label(name)};" in t]
                shown = label.split(":", 1)[1].split(";", 1)[0]
                drawn = float(shown.replace("\N{MINUS SIGN}", "-"))  # Vega's typographic minus
                assert drawn == pytest.approx(value, abs=1e-9)
            assert f"{explanation['score']:.3f}" in page.content()
            assert page.get_by_text("Traceback").count() == 0
            page.screenshot(path=str(tmp_path / "explained.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "explained.png").stat().st_size > 0


def _form_default(feature: Feature) -> float:
    """What a wine feature's input starts at (a wine feature is never empty)."""
    value = number_spec(feature).value
    assert value is not None
    return float(value)


def _service_prediction(api_url: str, record: Mapping[str, object]) -> dict[str, Any]:
    response = requests.post(f"{api_url}/predict", json={"records": [record]}, timeout=30)
    response.raise_for_status()
    prediction: dict[str, Any] = response.json()["predictions"][0]
    return prediction
