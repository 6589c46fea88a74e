"""Faults that happen in production, each against real processes, each with a stated bound.

- A service worker is killed: it is replaced; requests recover within WORKER_RECOVERY_BOUND_S.
- The MLflow server is down: the service keeps serving; `cepage retrain` fails within
  MLFLOW_DOWN_BOUND_S with a clear message, @champion and the served model untouched.
- Prometheus is down: the service is unaffected.
- A corrupt or missing model in the store: the service refuses to start, saying why.
- The API is down: the UI says so clearly -- tested in tests/ui/test_app.py and
  tests/ui/test_client.py (test_nothing_listening_is_not_reachable), not repeated here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from stack.processes import stop_group
from tests.reliability.conftest import Server, bentoml_server, serve_argv
from tests.reliability.load import Load, wait_for
from tests.support.procs import (
    cepage,
    free_port,
    private_bentoml_home,
    require_binary,
    running,
    stack_env,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(180)]

# A killed worker is respawned by BentoML's arbiter (outside a container); measured ~5-11 s on a
# 2-core machine (a worker's cold start), so 30 s leaves room for a busy CI machine.
WORKER_RECOVERY_BOUND_S = 30.0
# `cepage retrain` against an MLflow server that does not answer: measured 3-15 s (mostly the
# CLI's own start on a busy machine); it was ~4 min of MLflow client retries before the pre-flight.
MLFLOW_DOWN_BOUND_S = 60.0
# A service that cannot load its model must stop (in a container) within this.
REFUSE_BOUND_S = 60.0


def worker_pids(server: Server) -> set[int]:
    return {p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)}


def test_a_killed_worker_is_replaced_and_requests_recover(trained_home: Path) -> None:
    with bentoml_server(trained_home, workers=1) as server:
        [worker] = worker_pids(server)
        with Load(server.url, server.median_record(), clients=2, timeout=2.0) as load:
            wait_for(lambda: len(load.successes()) > 20, timeout=30, what="traffic")
            killed = time.monotonic()
            os.kill(worker, signal.SIGKILL)
            recovered = wait_for(
                lambda: len(load.successes(since=killed + 0.2)) > 5,
                timeout=WORKER_RECOVERY_BOUND_S,
                what="answers again after the worker was killed",
            )
        replacement = worker_pids(server)
        assert replacement and worker not in replacement
        failed = load.failures(since=killed)
        assert server.proc.poll() is None, "the server itself must survive a worker's death"
    print(
        f"\nworker killed: answers again after {recovered:.1f} s "
        f"(bound {WORKER_RECOVERY_BOUND_S:g} s); {len(failed)} requests failed meanwhile"
    )


def test_in_a_container_a_dead_worker_takes_its_share_of_connections_with_it(
    trained_home: Path,
) -> None:
    """Each worker has its own listening socket (bento/listeners.py) and, in a container,
    BentoML never restarts a dead one: its socket must go with it, or the kernel would keep
    handing it half of the new connections, with nobody to accept them."""
    with bentoml_server(trained_home, workers=2, BENTOML_CONTAINERIZED="true") as server:
        record = server.median_record()
        victim = min(worker_pids(server))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in worker_pids(server), timeout=10, what="the worker's end")
        answers = []
        for _ in range(24):  # a new connection each: the kernel hashes each one anew
            with requests.Session() as fresh:
                response = fresh.post(
                    f"{server.url}/predict", json={"records": [record]}, timeout=3
                )
                answers.append(response.status_code)
        assert answers == [200] * 24
        assert server.proc.poll() is None
        assert len(worker_pids(server)) == 1, "not replaced: BentoML in a container"


def champion_version(home: Path) -> str:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    return str(client.get_model_version_by_alias("cepage-classifier", "champion").version)


def latest_model(home: Path) -> str:
    return (home / "bentoml" / "models" / "cepage-classifier" / "latest").read_text().strip()


def test_mlflow_down_the_service_serves_and_retrain_fails_clearly(own_home: Path) -> None:
    champion, packaged = champion_version(own_home), latest_model(own_home)
    dead = f"http://127.0.0.1:{free_port()}"  # an MLflow server that is down: nothing answers
    with (
        bentoml_server(own_home, CEPAGE_MODEL_RELOAD_SECONDS="1") as server,
        Load(server.url, server.median_record(), clients=1) as load,
    ):
        began = time.monotonic()
        done = cepage("retrain", "--no-build", env=stack_env(own_home, MLFLOW_TRACKING_URI=dead))
        took = time.monotonic() - began
        time.sleep(1.5)  # a reload check after the failed retrain
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"Cannot reach the MLflow tracking server at {dead}" in done.stderr
    assert "Traceback" not in done.stderr
    assert took < MLFLOW_DOWN_BOUND_S
    assert load.failures() == []
    assert len({o.version for o in load.outcomes}) == 1, "the served model changed"
    assert (champion_version(own_home), latest_model(own_home)) == (champion, packaged)
    print(
        f"\nMLflow down: retrain failed after {took:.1f} s, {len(load.outcomes)} answers, 0 failed"
    )


def prometheus_config(directory: Path, target: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "service", "static_configs": [{"targets": [target]}]}],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_prometheus_down_leaves_the_service_unaffected(trained_home: Path, tmp_path: Path) -> None:
    binary = require_binary("prometheus")
    with bentoml_server(trained_home) as server:
        port = free_port()
        prom = f"http://127.0.0.1:{port}"
        argv = [
            binary,
            f"--config.file={prometheus_config(tmp_path, server.url.removeprefix('http://'))}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with Load(server.url, server.median_record(), clients=1) as load:
            with running(argv, log=tmp_path / "prometheus.log", ready_url=f"{prom}/-/ready") as p:
                wait_for(lambda: scraped(prom), timeout=30, what="Prometheus scraping the service")
                stop_group(p, timeout=10)  # Prometheus goes down
            down = time.monotonic()
            wait_for(lambda: len(load.successes(since=down)) > 50, timeout=30, what="answers")
        metrics = requests.get(f"{server.url}/metrics", timeout=10)
    assert load.failures() == []
    assert metrics.status_code == 200 and "cepage_predictions_total" in metrics.text
    print(f"\nPrometheus down: {len(load.successes(since=down))} answers after, 0 failed")


def scraped(prometheus: str) -> bool:
    try:
        answer = requests.get(
            f"{prometheus}/api/v1/query", params={"query": 'up{job="service"} == 1'}, timeout=5
        )
        return bool(answer.json()["data"]["result"])
    except (requests.RequestException, ValueError, KeyError):
        return False


def corrupt(home: Path) -> None:
    [skops] = (home / "bentoml" / "models").rglob("model.skops")
    skops.write_bytes(b"not a model")


def serve_until_exit(home: Path, **env: str) -> tuple[int | None, str, float]:
    """Run `bentoml serve` on ``home`` until it exits or REFUSE_BOUND_S; (code, log, seconds)."""
    port = free_port()
    environ = stack_env(home, **env)
    environ["BENTOML_HOME"] = str(private_bentoml_home(home, port))
    log = home / f"serve-{port}.log"
    began = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            serve_argv(port), env=environ, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        code: int | None = proc.wait(timeout=REFUSE_BOUND_S)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        stop_group(proc)
    return code, log.read_text(errors="replace"), time.monotonic() - began


def test_a_corrupt_model_refuses_to_start_in_a_container(own_home: Path) -> None:
    corrupt(own_home)
    # As in the image (BENTOML_CONTAINERIZED=true): a worker that fails is not respawned and the
    # server exits, so the container's restart policy and healthcheck see it.
    code, log, took = serve_until_exit(own_home, BENTOML_CONTAINERIZED="true")
    assert code not in (None, 0)
    # The digest recorded at promotion no longer matches: refused before the file is parsed.
    assert "cannot be served: its file is not the one promoted" in log
    assert took < REFUSE_BOUND_S
    print(f"\ncorrupt model: refused, exit {code} after {took:.1f} s")


def test_a_corrupt_model_is_never_served_locally(own_home: Path) -> None:
    corrupt(own_home)
    port = free_port()
    environ = stack_env(own_home)
    environ["BENTOML_HOME"] = str(private_bentoml_home(own_home, port))
    log = own_home / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            serve_argv(port), env=environ, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        said = wait_for(
            lambda: "its file is not the one promoted" in log.read_text(errors="replace"),
            timeout=REFUSE_BOUND_S,
            what="the reason in the log",
        )
        with pytest.raises(requests.RequestException):
            requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).raise_for_status()
    finally:
        stop_group(proc)
    print(f"\ncorrupt model (local): never ready, reason logged after {said:.1f} s")


def test_a_missing_model_refuses_to_start(tmp_path: Path) -> None:
    code, log, took = serve_until_exit(tmp_path)
    assert code not in (None, 0)
    assert "Model cepage-classifier:latest could not be found" in log
    print(f"\nmissing model: refused, exit {code} after {took:.1f} s")
