"""The Streamlit page under AppTest, started against a given service (shared by the UI tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

TIMEOUT = 60


def start_app(monkeypatch: pytest.MonkeyPatch, url: str, app_path: Path) -> AppTest:
    """The page run once with CEPAGE_API_URL set to ``url``; fails on any exception it shows."""
    monkeypatch.setenv("CEPAGE_API_URL", url)
    at = AppTest.from_file(str(app_path), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at
