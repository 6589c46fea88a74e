"""The servers under test: how each is started, where it answers and what body it takes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from contracts.names import champion_uri
from stack.home import BIN

Record = dict[str, float]
PROBE_TIMEOUT_S = 2.0
# Loopback only, never through a proxy a user may have configured.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class ServerSpec:
    """One server configuration (a row group of the table)."""

    key: str
    title: str
    path: str
    body: Callable[[Record], str]
    argv: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


def cepage_body(record: Record) -> str:
    return json.dumps({"records": [record]})


def mlflow_body(record: Record) -> str:
    return json.dumps({"dataframe_records": [record]})


def _bentoml(port: int) -> list[str]:
    return [
        str(BIN / "bentoml"),
        "serve",
        "bento.service:Classifier",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def _mlflow(port: int) -> list[str]:
    return [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        champion_uri(),
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "-p",
        str(port),
    ]


def _fastapi(port: int) -> list[str]:
    return [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        "--factory",
        "bench.fastapi_app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


# Access log off, via BentoML's own config override (the service's code is unchanged).
NO_ACCESS_LOG = "services.cepage.logging.access.enabled=false"

SERVERS: dict[str, ServerSpec] = {
    spec.key: spec
    for spec in (
        ServerSpec(
            "cepage",
            "cepage (bentoml serve, 1 worker)",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1"},
        ),
        ServerSpec(
            "cepage-2w",
            "cepage (bentoml serve, 2 workers)",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "2"},
        ),
        ServerSpec(
            "cepage-nolog",
            "cepage, 1 worker, access log off",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1", "BENTOML_CONFIG_OPTIONS": NO_ACCESS_LOG},
            "BENTOML_CONFIG_OPTIONS=" + NO_ACCESS_LOG,
        ),
        ServerSpec(
            "mlflow",
            "mlflow models serve (default: 1 worker)",
            "/invocations",
            mlflow_body,
            _mlflow,
            note="answers labels only (pyfunc predict), no probabilities",
        ),
        ServerSpec(
            "fastapi",
            "minimal FastAPI + uvicorn (1 worker)",
            "/predict",
            cepage_body,
            _fastapi,
        ),
    )
}
DEFAULT_SERVERS = ("cepage", "cepage-2w", "mlflow", "fastapi")


def predict_once(url: str, body: str) -> bool:
    """True when one POST of ``body`` to ``url`` answers 200 with a JSON body."""
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with _OPENER.open(request, timeout=PROBE_TIMEOUT_S) as response:
            json.loads(response.read())
            return int(response.status) == 200
    except (OSError, ValueError, urllib.error.URLError):
        return False


def check_answer(url: str, body: str) -> str:
    """One request's JSON answer as text (for the log and a sanity check)."""
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with _OPENER.open(request, timeout=10) as response:
        return str(response.read().decode())
