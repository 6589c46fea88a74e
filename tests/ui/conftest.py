"""Fixtures of the UI tests: the page's path, clients of the real services (the wine model and
the model trained on mixed data), hand-written schemas of both versions, a dead URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.procs import ROOT, free_port
from tests.ui.schemas import V1_BODY, V2_BODY
from ui.client import ApiClient
from ui.responses import Metadata, parse_metadata

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


@pytest.fixture
def v1_metadata() -> Metadata:
    """A hand-written version-1 schema (numbers only), parsed; no service."""
    return parse_metadata(V1_BODY)


@pytest.fixture
def v2_metadata() -> Metadata:
    """A hand-written version-2 schema with every kind, nullable or not, parsed; no service."""
    return parse_metadata(V2_BODY)


@pytest.fixture
def mixed_client(mixed_api_url: str) -> ApiClient:
    return ApiClient(mixed_api_url, timeout=30)


@pytest.fixture(scope="session")
def mixed_served(mixed_api_url: str) -> Metadata:
    """The real mixed-data service's metadata, parsed by the UI's client."""
    return ApiClient(mixed_api_url, timeout=30).metadata()
