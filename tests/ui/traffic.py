"""Watching the real service's traffic through its Prometheus metrics."""

from __future__ import annotations

import re
import time

import requests

_PREDICT_REQUESTS = re.compile(
    r'^bentoml_service_request_total\{[^}]*endpoint="/predict"[^}]*\}\s+([0-9.eE+]+)$', re.M
)


def predict_requests(api_url: str) -> float:
    """How many requests POST /predict has answered so far (any status), from /metrics.

    Read until two readings agree, so that the count of a request answered just before is in.
    """
    previous = -1.0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = requests.get(f"{api_url}/metrics", timeout=10).text
        found = _PREDICT_REQUESTS.findall(text)
        assert found, "no bentoml_service_request_total for /predict in /metrics"
        count = sum(float(v) for v in found)
        if count == previous:
            return count
        previous = count
        time.sleep(0.2)
    raise AssertionError("the /predict request count of /metrics did not settle")
