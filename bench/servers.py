"""The servers under test: how each is started, where it answers and what body it takes.

``cepage-log`` is ``cepage`` with the production log on (``CEPAGE_PREDICTION_LOG`` set to a fresh
directory of the run's home, every other log setting at its default): the two rows side by side
are what the log costs. Every other server runs with the log off, whatever the caller's
environment says.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import PROXY_1, PROXY_2
from contracts import production_log as log_names
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
    prediction_log: bool = False  # True: CEPAGE_PREDICTION_LOG set to a fresh directory
    forest: bool = False  # True: serves the forest champion of the run's second home
    replicas: int = 0  # > 0: that many 1-worker replicas behind the prod proxy (bench.proxied)


LOG_SETTING = "CEPAGE_PREDICTION_LOG"
LOG_METRIC = "cepage_prediction_log_rows_total"  # as bench.report.LOG_METRIC
SERVED_METRIC = "bentoml_service_request_total"  # BentoML's, one series per endpoint and code


def cepage_body(record: Record) -> str:
    return json.dumps({"records": [record]})


def explain_body(record: Record) -> str:
    return json.dumps({"records": [record], "explain": True})


def mlflow_body(record: Record) -> str:
    return json.dumps({"dataframe_records": [record]})


def _bentoml_serve(target: str) -> Callable[[int], list[str]]:
    """`bentoml serve TARGET` on 127.0.0.1:port (the service of the checkout, or another)."""

    def argv(port: int) -> list[str]:
        return [str(BIN / "bentoml"), "serve", target, "--host", "127.0.0.1", "--port", str(port)]

    return argv


_bentoml = _bentoml_serve("bento.service:Classifier")
_plain_bentoml = _bentoml_serve("bench.plain_bento:Plain")


def _proxied(replicas: int) -> Callable[[int], list[str]]:
    """``replicas`` 1-worker replicas behind the prod reverse proxy on port (bench/proxied.py)."""

    def argv(port: int) -> list[str]:
        return [str(BIN / "python"), "-m", "bench.proxied",
                "--port", str(port), "--replicas", str(replicas)]  # fmt: skip

    return argv


PROXY_NOTE = (
    "compose/caddy/sites/app-on.caddy's API site run by the proxy's Caddy (tests/tools/caddy.sh), "
    "the replicas given by address instead of Docker's DNS, the rate limit and drain flag left "
    "out (bench/proxied.py)"
)


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
            "cepage-log",
            "cepage, 1 worker, prediction log on",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1"},
            f"{LOG_SETTING}=<home>/cepage-log-production (local Parquet), the other "
            f"{LOG_SETTING}_* settings at their defaults",
            prediction_log=True,
        ),
        ServerSpec(
            "cepage-shadow",
            "cepage, 1 worker, shadow challenger on",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1", "CEPAGE_SHADOW": "on"},
            "CEPAGE_SHADOW=on with a challenger trained like the champion packaged beside it: it "
            "scores every request too, on its own thread",
        ),
        ServerSpec(
            "cepage-explain",
            "cepage, 1 worker, every request with explain: true",
            "/predict",
            explain_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1"},
            'the same service as cepage; each request asks "explain": true (each feature\'s '
            "contribution to the predicted class, docs/api.md)",
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
            PROXY_2,
            "cepage behind the prod proxy, 2 replicas of 1 worker",
            "/predict",
            cepage_body,
            _proxied(2),
            note=PROXY_NOTE,
            replicas=2,
        ),
        ServerSpec(
            PROXY_1,
            "cepage behind the prod proxy, 1 replica of 1 worker",
            "/predict",
            cepage_body,
            _proxied(1),
            note="the same proxy in front of one replica: what the proxy itself costs",
            replicas=1,
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
            "cepage-traced",
            "cepage, 1 worker, tracing middleware on",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1", "CEPAGE_TRACING": "on"},
            "CEPAGE_TRACING=on: BentoML's OpenTelemetry middleware as it ships (off by default)",
        ),
        ServerSpec(
            "cepage-access-log",
            "cepage, 1 worker, access log on",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1", "CEPAGE_ACCESS_LOG": "on"},
            "CEPAGE_ACCESS_LOG=on: BentoML's access log, a line per request (off by default)",
        ),
        ServerSpec(
            "cepage-forest",
            "cepage, 1 worker, forest model (batched: its measurement)",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1"},
            "`--model forest` (200 trees) on the same data; CEPAGE_BATCHING=auto, which batches "
            "it from the cost of 1 row against 32 that `cepage package` measured",
            forest=True,
        ),
        ServerSpec(
            "cepage-forest-unbatched",
            "cepage, 1 worker, forest model, batching off",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1", "CEPAGE_BATCHING": "off"},
            "the same forest with CEPAGE_BATCHING=off: each request scored alone",
            forest=True,
        ),
        ServerSpec(
            "cepage-batched",
            "cepage, 1 worker, batching forced on (linear)",
            "/predict",
            cepage_body,
            _bentoml,
            {"CEPAGE_WORKERS": "1", "CEPAGE_BATCHING": "on"},
            "the linear model with CEPAGE_BATCHING=on, against its measured default (off)",
        ),
        ServerSpec(
            "bentoml-plain",
            "plain BentoML service (1 worker)",
            "/predict",
            cepage_body,
            _plain_bentoml,
            note="bench/plain_bento.py: a @bentoml.service as in BentoML's examples, same model "
            "and Predictor, BentoML's defaults; no cepage feature",
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
DEFAULT_SERVERS = (
    "cepage",
    "cepage-log",
    "cepage-shadow",
    "cepage-explain",
    "cepage-2w",
    PROXY_2,
    PROXY_1,
    "cepage-traced",
    "cepage-access-log",
    "cepage-forest",
    "cepage-forest-unbatched",
    "cepage-batched",
    "bentoml-plain",
    "mlflow",
    "fastapi",
)


FOREST_HOME = "forest-home"  # inside the run's home


def home_of(spec: ServerSpec, home: Path) -> Path:
    """The CEPAGE_HOME ``spec`` serves from: the run's, or its forest home."""
    return home / FOREST_HOME if spec.forest else home


def log_directory(spec: ServerSpec, home: Path) -> Path:
    """Where ``spec``'s production log goes in the run's home (used when it has one)."""
    return home / f"{spec.key}-production"


def with_log_setting(env: Mapping[str, str], spec: ServerSpec, home: Path) -> dict[str, str]:
    """``env`` with the production log's settings for ``spec``: the caller's
    ``CEPAGE_PREDICTION_LOG*`` dropped, then the log on in a fresh directory (``cepage-log``) or
    off (every other server)."""
    out = {k: v for k, v in env.items() if not k.startswith(LOG_SETTING)}
    if not spec.prediction_log:
        out[LOG_SETTING] = log_names.OFF
        return out
    directory = log_directory(spec, home)
    shutil.rmtree(directory, ignore_errors=True)
    out[LOG_SETTING] = str(directory)
    return out


_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """(labels, value) of each sample of the metric ``name`` in a Prometheus text page."""
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            yield dict(_LABEL.findall(match["labels"] or "")), float(match["value"])


def log_rows_from_metrics(text: str, dataset: str = log_names.PREDICTIONS) -> dict[str, int]:
    """Rows of ``dataset`` by outcome (written, dropped, ...) from a Prometheus text page."""
    rows: dict[str, int] = {}
    for labels, value in samples(text, LOG_METRIC):
        if labels.get("log") == dataset and "outcome" in labels:
            outcome = labels["outcome"]
            rows[outcome] = rows.get(outcome, 0) + round(value)
    return rows


def private_bentoml_home(shared: Path, key: str) -> Path:
    """A BENTOML_HOME for one of several servers up at once: the shared home's stores linked,
    its own ``prometheus_multiproc_dir`` and ``tmp``. BentoML keeps its metrics files in
    ``$BENTOML_HOME/prometheus_multiproc_dir`` and empties it when a server starts: with one
    home, the second server would wipe the first one's counters (and /metrics would mix both)."""
    own = shared.parent / f"{shared.name}-{key}"
    own.mkdir(exist_ok=True)
    for entry in shared.iterdir():
        link = own / entry.name
        if entry.name not in ("prometheus_multiproc_dir", "tmp") and not link.exists():
            link.symlink_to(entry)
    (own / "tmp").mkdir(exist_ok=True)
    return own


def served_requests(text: str, path: str = "/predict") -> int:
    """Requests answered 200 on ``path``, from BentoML's counter in a Prometheus text page."""
    return round(
        sum(
            value
            for labels, value in samples(text, SERVED_METRIC)
            if labels.get("endpoint") == path and labels.get("http_response_code") == "200"
        )
    )


def log_tail(log: Path, chars: int = 3000) -> str:
    """The end of a server's log, for a failure's message."""
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def read_metrics(url: str) -> str:
    """The service's ``/metrics`` page (Prometheus text)."""
    with _OPENER.open(url, timeout=10) as response:
        return str(response.read().decode())


def parquet_rows(directory: Path) -> tuple[int, int]:
    """(rows, files) of the Parquet files under ``directory`` (temporary files left out)."""
    import pyarrow.parquet as pq

    files = [p for p in directory.rglob("*.parquet") if not p.name.startswith(".")]
    return sum(pq.ParquetFile(p).metadata.num_rows for p in files), len(files)


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
