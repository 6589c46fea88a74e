"""Fixtures of the UI tests: the page's path, a client of the real service, a dead URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.procs import ROOT, free_port
from ui.client import ApiClient
from ui.responses import Metadata

APP = ROOT / "ui" / "app.py"


@pytest.fixture(scope="session")
def app_path() -> Path:
    return APP


@pytest.fixture
def client(api_url: str) -> ApiClient:
    return ApiClient(api_url, timeout=30)


@pytest.fixture(scope="session")
def served(api_url: str) -> Metadata:
    """The real service's metadata, parsed by the UI's client."""
    return ApiClient(api_url, timeout=30).metadata()


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
