"""A real Prometheus, with the repo's config and rules, scraping real services under load.

Two services from the same model: `cepage-service` gets partly shifted inputs (drift), bad
requests and feedback; `cepage-baseline` gets rows of the training data. Every dashboard panel's
query must return data, drift must show where (and only where) the inputs moved, and the drift
alert's expression must hold there.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml

from stack.home import cepage, prepare_home, stack_env
from tests.monitoring.test_config import GRAFANA, PROMETHEUS, alert_rules
from tests.support.procs import bentoml_serve, free_port, require_binary, running
from train.data import load_wine_frame

pytestmark = pytest.mark.monitoring

SHIFTED = ("proline", "alcohol")
ROWS = 400
RATE_INTERVAL = "30s"  # what $__rate_interval becomes in these queries


def prometheus_config(directory: Path, targets: dict[str, str]) -> Path:
    """The repo's prometheus.yml, scraping every second, plus a second service job."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    for job in config["scrape_configs"]:
        job.pop("scrape_interval", None)
    config["scrape_configs"].append(
        {"job_name": "cepage-baseline", "file_sd_configs": [{"files": ["targets/baseline.json"]}]}
    )
    (directory / "rules").symlink_to(PROMETHEUS / "rules")
    (directory / "targets").mkdir()
    for job in ("service", "node", "mlflow", "prometheus", "alertmanager", "baseline"):
        content = [{"targets": [targets[job]]}] if job in targets else []
        (directory / "targets" / f"{job}.json").write_text(json.dumps(content))
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def prometheus_running(
    binary: str, directory: Path, targets: dict[str, str], port: int
) -> Iterator[str]:
    """The real Prometheus on ``port`` with :func:`prometheus_config`, ready; yields its URL."""
    config = prometheus_config(directory, targets)
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}"]
    argv += [f"--web.listen-address=127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    with running(argv, log=directory / "prometheus.log", ready_url=f"{url}/-/ready"):
        yield url


def records(frame: Any, count: int, seed: int, shift: bool) -> list[dict[str, float]]:
    rows = frame.sample(count, replace=True, random_state=seed).drop(columns=["cultivar"])
    if shift:
        for name in SHIFTED:
            rows[name] = rows[name] + 2 * frame[name].std()
    return [{k: float(v) for k, v in row.items()} for row in rows.to_dict(orient="records")]


def send_load(url: str, rows: list[dict[str, float]], feedback_wrong: bool) -> None:
    session = requests.Session()
    for start in range(0, len(rows), 20):
        batch = rows[start : start + 20]
        response = session.post(f"{url}/predict", json={"records": batch}, timeout=30)
        assert response.status_code == 200, response.text
        for prediction in response.json()["predictions"][:5]:
            label = prediction["label"]
            if feedback_wrong:
                label = next(c for c in prediction["probabilities"] if c != label)
            session.post(
                f"{url}/feedback",
                json={"prediction_id": prediction["id"], "label": label},
                timeout=10,
            )
    for row in rows[:30]:  # single-record traffic, as the UI sends it
        assert session.post(f"{url}/predict", json={"records": [row]}, timeout=10).ok
    for _ in range(10):  # a few malformed requests for the 4xx panel
        assert session.post(f"{url}/predict", json={"records": []}, timeout=10).status_code == 400


class Trickle:
    """Single-record traffic in the background, a few requests a second, for as long as it runs.

    Dashboards are read while traffic flows: without it, every `rate(...[30s])` panel goes to
    zero (and every latency quantile to NaN) half a minute after the load, and on a slow machine
    the tests would read the dashboards after that.
    """

    def __init__(self, targets: dict[str, list[dict[str, float]]], interval: float = 0.25):
        self.targets, self.interval = targets, interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        session = requests.Session()
        sent = 0
        while not self.stopping.wait(self.interval):
            for url, rows in self.targets.items():
                row = rows[sent % len(rows)]
                # A failure shows up in the panels' own assertions.
                with contextlib.suppress(requests.RequestException):
                    session.post(f"{url}/predict", json={"records": [row]}, timeout=10)
            sent += 1

    def __enter__(self) -> Trickle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=15)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(prometheus: str, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(prometheus, expr)
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"no data for {expr} after {timeout}s")


def shadow_home(home: Path) -> Path:
    """A home whose store also holds a challenger (trained like the champion, made @challenger
    by a gate asking it to beat the champion by 1), for a server with the shadow on: the
    dashboard's shadow panels need one."""
    prepare_home(home)
    env = stack_env(home)
    rejected = cepage("retrain", "--no-build", "--tolerance", "-1", env=env)
    assert rejected.returncode == 3, rejected.stdout + rejected.stderr
    packaged = cepage("package", "--no-build", env=env)
    assert "Imported @challenger" in packaged.stdout, packaged.stdout + packaged.stderr
    return home


@pytest.fixture(scope="module")
def prometheus(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_binary("prometheus")
    node_exporter = require_binary("prometheus-node-exporter")
    directory = tmp_path_factory.mktemp("prometheus")
    node_port, prom_port = free_port(), free_port()
    node_argv = [node_exporter, f"--web.listen-address=127.0.0.1:{node_port}"]
    node_url = f"http://127.0.0.1:{node_port}/metrics"
    with (
        running(node_argv, log=directory / "node.log", ready_url=node_url),
        bentoml_serve(trained_home) as shifted,
        # The baseline also shadows a challenger: every panel of the dashboard has data.
        bentoml_serve(
            shadow_home(tmp_path_factory.mktemp("shadow-home")), extra_env={"CEPAGE_SHADOW": "on"}
        ) as baseline,
    ):
        targets = {
            "service": shifted.removeprefix("http://"),
            "baseline": baseline.removeprefix("http://"),
            "node": f"127.0.0.1:{node_port}",
            "prometheus": f"127.0.0.1:{prom_port}",
        }
        with prometheus_running(binary, directory, targets, prom_port) as url:
            # Counters must be scraped at zero before the load, so increase() sees all of it.
            wait_for(url, 'cepage_feature_bin_total{job="cepage-baseline"}')
            wait_for(url, 'cepage_feature_bin_total{job="cepage-service"}')
            time.sleep(2)
            frame = load_wine_frame()
            shifted_rows = records(frame, ROWS, seed=1, shift=True)
            baseline_rows = records(frame, ROWS, seed=2, shift=False)
            send_load(shifted, shifted_rows, feedback_wrong=True)
            send_load(baseline, baseline_rows, feedback_wrong=False)
            with Trickle({shifted: shifted_rows, baseline: baseline_rows}):
                wait_for(
                    url,
                    f'cepage:feature_observations:increase30m{{job="cepage-baseline"}} >= {ROWS}',
                )
                wait_for(url, 'cepage:feature_psi:30m{job="cepage-service"}')
                # ">= 0" drops NaN: the quantile exists only once the rule saw requests.
                wait_for(url, 'cepage:request_duration_seconds:p99_5m{endpoint="/predict"} >= 0')
                time.sleep(3)  # a few more scrapes and rule evaluations
                yield url


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", RATE_INTERVAL))
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def queries_without_data(
    prometheus: str, dashboard: dict[str, Any], patience: float = 30
) -> list[str]:
    """Panels one of whose queries returns nothing (or only NaN), after up to ``patience`` s.

    Recording rules need a few evaluations after the load; a busy machine delays them.
    """
    pending = [f"{title}: {expr}" for title, expr in panel_queries(dashboard)]
    deadline = time.monotonic() + patience
    while True:
        pending = [entry for entry in pending if not has_data(prometheus, entry.split(": ", 1)[1])]
        if not pending or time.monotonic() > deadline:
            return pending + scrape_state(prometheus) if pending else []
        time.sleep(2)


def scrape_state(prometheus: str) -> list[str]:
    """What Prometheus sees of its targets, to explain a failure (appended to its message)."""
    lines = []
    for expr in ("up", "count by (job) (bentoml_service_request_duration_seconds_bucket)"):
        for sample in query(prometheus, expr):
            lines.append(f"(state) {expr} {sample['metric']} = {sample['value'][1]}")
    return lines


def has_data(prometheus: str, expr: str) -> bool:
    values = [float(s["value"][1]) for s in query(prometheus, expr)]
    return bool(values) and not all(np.isnan(values))


def load_dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards" / name).read_text())
    return data


@pytest.mark.parametrize("name", ["cepage-service.json", "cepage-host.json"])
def test_every_panel_query_returns_data(prometheus: str, name: str) -> None:
    assert queries_without_data(prometheus, load_dashboard(name)) == []


def test_a_wrong_metric_name_is_caught(prometheus: str) -> None:
    broken = copy.deepcopy(load_dashboard("cepage-service.json"))
    panel = next(p for p in broken["panels"] if p["title"] == "Predictions by class")
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace(
        "cepage_predictions_total", "cepage_prediction_total"
    )
    missing = queries_without_data(prometheus, broken)
    assert missing and missing[0].startswith("Predictions by class"), missing
    assert all(entry.startswith("(state)") for entry in missing[1:]), missing


def psi(prometheus: str, job: str) -> dict[str, float]:
    result = query(prometheus, f'cepage:feature_psi:30m{{job="{job}"}}')
    return {s["metric"]["feature"]: float(s["value"][1]) for s in result}


def test_drift_is_low_in_distribution_and_high_where_inputs_moved(prometheus: str) -> None:
    baseline = psi(prometheus, "cepage-baseline")
    shifted = psi(prometheus, "cepage-service")
    assert len(baseline) == 13 and len(shifted) == 13
    assert max(baseline.values()) < 0.1, baseline
    for feature in SHIFTED:
        assert shifted[feature] > 0.25, shifted
    unshifted = {k: v for k, v in shifted.items() if k not in SHIFTED}
    assert max(unshifted.values()) < 0.1, unshifted


def test_the_drift_alert_expression_holds_only_for_the_shifted_features(prometheus: str) -> None:
    expr = alert_rules()["CepageFeatureDrift"]["expr"]
    firing = {(s["metric"]["job"], s["metric"]["feature"]) for s in query(prometheus, expr)}
    assert firing == {("cepage-service", name) for name in SHIFTED}


def test_feedback_accuracy_and_prediction_mix(prometheus: str) -> None:
    accuracy = {
        s["metric"]["job"]: float(s["value"][1])
        for s in query(prometheus, "cepage:feedback_accuracy:ratio1h")
    }
    assert accuracy["cepage-baseline"] == pytest.approx(1.0)
    assert accuracy["cepage-service"] == pytest.approx(0.0)
    mix = query(
        prometheus, 'sum by (label) (increase(cepage_predictions_total{job="cepage-baseline"}[5m]))'
    )
    assert {s["metric"]["label"] for s in mix} == {"Nebbiolo", "Grignolino", "Barbera"}
