"""The real page in a real browser: `streamlit run ui/app.py` driven through Chromium.

The browser is `CEPAGE_CHROMIUM` when set, else the first Chromium or Chrome found on PATH or in
macOS's /Applications, else the one `playwright install chromium` downloaded (docs/ui.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts.chromium import ARGS as CHROMIUM_ARGS
from scripts.chromium import MISSING as NO_CHROMIUM
from scripts.chromium import locate as locate_chromium
from tests.support.procs import BIN, ROOT, free_port, require, running
from ui.form import input_spec, readable_label
from ui.responses import Metadata

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
    with running(argv, log=tmp_path / "streamlit.log", ready_url=f"{url}/_stcore/health", env=env):
        yield url


def test_predict_in_a_real_browser(
    chromium: Path, ui_url: str, api_url: str, served: Metadata, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    # Change the first feature to its training maximum; the service says what to expect.
    feature = served.schema.features[0]
    record = {f.name: float(input_spec(f).value) for f in served.schema.features}
    spec = input_spec(feature)
    typed = spec.format % feature.max
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


def _service_prediction(api_url: str, record: dict[str, float]) -> dict[str, Any]:
    response = requests.post(f"{api_url}/predict", json={"records": [record]}, timeout=30)
    response.raise_for_status()
    prediction: dict[str, Any] = response.json()["predictions"][0]
    return prediction
