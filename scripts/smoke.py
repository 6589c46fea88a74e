"""Smoke test of a deployed cepage service: ready, one real prediction, scraped by Prometheus.

Run after every deploy (the `deploy` workflow, `make smoke URL=...`):

    .venv/bin/python scripts/smoke.py https://api.example.org \\
        --prometheus https://prometheus.example.org

1. ``GET /readyz`` answers 200 (retried until ``--wait`` seconds: a fresh deploy warms up);
2. ``GET /metadata`` gives the served model and its feature schema;
3. one record built from the schema (every feature at its training median) is sent to
   ``POST /predict``: the answer must be a 200 whose label is one of the model's classes;
4. with a Prometheus URL: ``up{job="cepage-service"}`` must be 1 for every target (retried until
   ``--wait``: the first scrape comes up to one scrape interval after the deploy).

Settings from the environment (never on the command line, so they stay out of logs):
``CEPAGE_API_KEY`` is sent as ``Authorization: Bearer KEY`` when set;
``CEPAGE_SMOKE_PROMETHEUS_URL`` is the default of ``--prometheus``;
``CEPAGE_SMOKE_PROMETHEUS_USER`` / ``CEPAGE_SMOKE_PROMETHEUS_PASSWORD`` are the basic-auth
credentials of the Prometheus behind the reverse proxy.

Every check prints one line; the first failure prints ``smoke: FAIL ...`` and exits 1
(2 for a usage error).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests

T = TypeVar("T")


class SmokeError(Exception):
    """A failed check; its message is the one line printed."""


def _session(api_key: str | None) -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "cepage-smoke"
    if api_key:
        session.headers["Authorization"] = f"Bearer {api_key}"
    return session


def _retry(check: Callable[[], T], wait: float, interval: float) -> T:
    """Call ``check`` until it returns, at most ``wait`` seconds; re-raise its last error."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return check()
        except SmokeError:
            if time.monotonic() + interval > deadline:
                raise
            time.sleep(interval)


# What a certificate error most often means for a new environment.
TLS_HINT = (
    " (no valid certificate yet: the proxy or the load balancer may still be getting one, or the"
    " certificate authority refused it, e.g. Let's Encrypt's weekly limit for a shared zone such"
    " as sslip.io: docs/install.md, HTTPS and names)"
)


def _get(session: requests.Session, url: str, timeout: float, **kwargs: Any) -> requests.Response:
    try:
        return session.get(url, timeout=timeout, **kwargs)
    except requests.exceptions.SSLError as exc:
        raise SmokeError(f"GET {url}: SSLError: {exc}{TLS_HINT}") from None
    except requests.RequestException as exc:
        raise SmokeError(f"GET {url}: {type(exc).__name__}: {exc}") from None


def _json(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise SmokeError(f"{what}: the answer is not JSON: {response.text[:200]!r}") from None


def check_ready(session: requests.Session, base: str, timeout: float) -> None:
    response = _get(session, f"{base}/readyz", timeout)
    if response.status_code != 200:
        raise SmokeError(f"GET {base}/readyz answered {response.status_code}, not 200")


def fetch_metadata(session: requests.Session, base: str, timeout: float) -> dict[str, Any]:
    response = _get(session, f"{base}/metadata", timeout)
    if response.status_code == 401:  # with a key set, the service describes its model to holders
        raise SmokeError(f"GET {base}/metadata answered 401 (set CEPAGE_API_KEY)")
    if response.status_code != 200:
        raise SmokeError(
            f"GET {base}/metadata answered {response.status_code}: {response.text[:200]}"
        )
    body = _json(response, "GET /metadata")
    try:
        schema = body["feature_schema"]
        features = schema["features"]
        classes = schema["classes"]
    except (KeyError, TypeError):
        raise SmokeError("GET /metadata: no feature_schema with features and classes") from None
    if not features or not classes:
        raise SmokeError("GET /metadata: the feature schema has no features or no classes")
    return dict(body)


def median_record(metadata: dict[str, Any]) -> dict[str, Any]:
    """One valid record: every number at its training median, every category at its most
    frequent value, every boolean at its more common value (the schema's kinds)."""
    record: dict[str, Any] = {}
    for feature in metadata["feature_schema"]["features"]:
        name = feature.get("name")
        kind = feature.get("kind") or feature.get("dtype") or "number"
        if kind == "category":
            if not feature.get("categories"):
                raise SmokeError(f"GET /metadata: category {name!r} lists no values")
            record[name] = feature["categories"][0]
            continue
        if kind == "boolean":
            record[name] = float(feature.get("true_share", 0.0)) >= 0.5
            continue
        value = feature.get("median")
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise SmokeError(f"GET /metadata: feature {name!r} has no finite median")
        record[name] = round(value) if kind == "integer" else value
    return record


def check_prediction(
    session: requests.Session, base: str, metadata: dict[str, Any], timeout: float
) -> str:
    record = median_record(metadata)
    try:
        response = session.post(f"{base}/predict", json={"records": [record]}, timeout=timeout)
    except requests.RequestException as exc:
        raise SmokeError(f"POST {base}/predict: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        hint = " (set CEPAGE_API_KEY)" if response.status_code == 401 else ""
        raise SmokeError(
            f"POST {base}/predict answered {response.status_code}{hint}: {response.text[:200]}"
        )
    body = _json(response, "POST /predict")
    classes = metadata["feature_schema"]["classes"]
    try:
        label = body["predictions"][0]["label"]
    except (KeyError, IndexError, TypeError):
        raise SmokeError(f"POST /predict: no predictions[0].label in {str(body)[:200]}") from None
    if label not in classes:
        raise SmokeError(f"POST /predict: label {label!r} is not one of the classes {classes}")
    return str(label)


def check_scraped(prometheus: str, job: str, auth: tuple[str, str] | None, timeout: float) -> int:
    """Every target of ``job`` is up in Prometheus; returns how many there are."""
    expr = f'up{{job="{job}"}}'
    url = f"{prometheus}/api/v1/query"
    try:
        response = requests.get(url, params={"query": expr}, auth=auth, timeout=timeout)
    except requests.RequestException as exc:
        raise SmokeError(f"Prometheus {url}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise SmokeError(f"Prometheus {url} answered {response.status_code}")
    body = _json(response, "Prometheus query")
    samples = (body.get("data") or {}).get("result") or []
    if not samples:
        raise SmokeError(f"Prometheus has no {expr}: the job is not scraped")
    down = [s["metric"].get("instance", "?") for s in samples if s["value"][1] != "1"]
    if down:
        raise SmokeError(f"Prometheus: {expr} is 0 for {', '.join(down)}")
    return len(samples)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Smoke-test a deployed cepage service (readiness, one prediction, scraping)."
    )
    parser.add_argument("url", help="the service's public base URL, e.g. https://api.example.org")
    parser.add_argument(
        "--prometheus",
        default=os.environ.get("CEPAGE_SMOKE_PROMETHEUS_URL") or None,
        help="Prometheus base URL: also check the service is scraped "
        "(default: $CEPAGE_SMOKE_PROMETHEUS_URL; none: skip that check)",
    )
    parser.add_argument("--job", default="cepage-service", help="Prometheus job of the service")
    parser.add_argument(
        "--wait", type=float, default=120, help="seconds to wait for readiness and scraping"
    )
    parser.add_argument("--interval", type=float, default=2, help="seconds between retries")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per HTTP request")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    base = args.url.rstrip("/")
    session = _session(os.environ.get("CEPAGE_API_KEY", "").strip() or None)
    _retry(lambda: check_ready(session, base, args.timeout), args.wait, args.interval)
    print(f"ok: {base}/readyz is ready")
    metadata = fetch_metadata(session, base, args.timeout)
    model = f"{metadata.get('name', '?')} version {metadata.get('version', '?')}"
    print(f"ok: serving {model}, {len(metadata['feature_schema']['features'])} features")
    label = check_prediction(session, base, metadata, args.timeout)
    print(f"ok: POST /predict of the median record -> {label}")
    if not args.prometheus:
        print("skip: no Prometheus URL given, scraping not checked")
        return
    prometheus = args.prometheus.rstrip("/")
    user = os.environ.get("CEPAGE_SMOKE_PROMETHEUS_USER", "")
    password = os.environ.get("CEPAGE_SMOKE_PROMETHEUS_PASSWORD", "")
    auth = (user, password) if user else None
    count = _retry(
        lambda: check_scraped(prometheus, args.job, auth, args.timeout), args.wait, args.interval
    )
    print(f'ok: Prometheus scrapes {count} target(s) of job "{args.job}", all up')


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except SmokeError as exc:
        print(f"smoke: FAIL {exc}", file=sys.stderr)
        return 1
    print("smoke: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
