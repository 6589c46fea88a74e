"""Fixtures of the UI tests: a client of the real service and ways to watch its traffic."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from tests.support.procs import ROOT, free_port
from ui.client import ApiClient, Metadata

APP = ROOT / "ui" / "app.py"
_PREDICT_REQUESTS = re.compile(
    r'^bentoml_service_request_total\{[^}]*endpoint="/predict"[^}]*\}\s+([0-9.eE+]+)$', re.M
)


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


def predict_requests(api_url: str) -> float:
    """How many requests POST /predict has answered so far (any status), from /metrics.

    Read until two readings agree, so that the count of a request answered just before is in.
    """
    previous = -1.0
    while True:
        text = requests.get(f"{api_url}/metrics", timeout=10).text
        count = sum(float(v) for v in _PREDICT_REQUESTS.findall(text))
        if count == previous:
            return count
        previous = count
        time.sleep(0.2)
