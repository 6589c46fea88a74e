"""``cepage up``: the whole stack on this machine, no Docker, no cloud.

MLflow (tracking server + UI over the embedded SQLite store), the model service (``bentoml serve``
from the checkout, reloading a newly packaged champion on its own) and the Streamlit UI, each a
child process with its log under ``.cepage/logs/``. Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import typer

from train.local_monitoring import (
    INSTALL_HINT,
    address,
    find_binary,
    prepare_prometheus,
    render_alertmanager,
)
from train.settings import Settings

# How often the local service looks for a newly packaged model (seconds).
RELOAD_SECONDS = "3"
READY_TIMEOUT = 120.0


@dataclass
class Child:
    """One process of the stack."""

    name: str
    argv: list[str]
    port: int
    health: str
    url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None


def _bin(name: str) -> str:
    """A console script of the current environment (the venv's, not whatever is on PATH)."""
    return str(Path(sys.executable).parent / name)


def plan(settings: Settings) -> list[Child]:
    """The processes to start, with their ports and health URLs."""
    host = settings.host
    base = dict(os.environ)
    mlflow_cmd = [_bin("mlflow"), "server", "--host", host, "--port", str(settings.mlflow_port)]
    # One user locally: one worker instead of MLflow's default four (~150 MB each).
    mlflow_cmd += ["--workers", "1"]
    if settings.uses_local_store:
        mlflow_cmd += [
            "--backend-store-uri",
            settings.tracking_uri,
            "--default-artifact-root",
            settings.artifact_root.as_uri(),
        ]
    api_env = {**base, "CEPAGE_MODEL_RELOAD_SECONDS": RELOAD_SECONDS}
    ui_env = {**base, "CEPAGE_API_URL": settings.api_url}
    return [
        Child(
            "mlflow",
            mlflow_cmd,
            settings.mlflow_port,
            "/health",
            f"http://{host}:{settings.mlflow_port}",
            base,
        ),
        Child(
            "api",
            [_bin("bentoml"), "serve", "bento.service:Classifier", "--host", host]
            + ["--port", str(settings.api_port)],
            settings.api_port,
            "/readyz",
            settings.api_url,
            api_env,
        ),
        Child(
            "ui",
            [sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.headless", "true"]
            + ["--server.address", host, "--server.port", str(settings.ui_port)]
            + ["--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"],
            settings.ui_port,
            "/_stcore/health",
            f"http://{host}:{settings.ui_port}",
            ui_env,
        ),
        *monitoring_plan(settings),
    ]


def monitoring_plan(settings: Settings) -> list[Child]:
    """Prometheus, Alertmanager and node_exporter, for those installed on this machine."""
    home, host, env = settings.home, settings.host, dict(os.environ)
    children = []
    node = find_binary("node_exporter", "prometheus-node-exporter")
    if node:
        port = settings.node_exporter_port
        argv = [node, f"--web.listen-address={address(settings, port)}"]
        children.append(
            Child("node_exporter", argv, port, "/metrics", f"http://{host}:{port}", env)
        )
    manager = find_binary("alertmanager", "prometheus-alertmanager")
    if manager:
        port = settings.alertmanager_port
        argv = [
            manager,
            f"--config.file={home / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={home / 'alertmanager' / 'data'}",
            f"--web.listen-address={address(settings, port)}",
            "--cluster.listen-address=",  # a single local instance: no gossip port
        ]
        children.append(Child("alertmanager", argv, port, "/-/ready", f"http://{host}:{port}", env))
    prometheus = find_binary("prometheus")
    if prometheus:
        port = settings.prometheus_port
        argv = [
            prometheus,
            f"--config.file={home / 'prometheus' / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'prometheus' / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address={address(settings, port)}",
        ]
        children.append(Child("prometheus", argv, port, "/-/ready", f"http://{host}:{port}", env))
    return children


def prepare_monitoring(settings: Settings, project: Path, children: list[Child]) -> None:
    """Write Prometheus' config and targets and Alertmanager's config for the planned children."""
    names = {c.name: c for c in children}
    if "alertmanager" in names:
        render_alertmanager(settings, project)
    if "prometheus" in names:
        targets = {
            "service": [address(settings, settings.api_port)],
            "node": [address(settings, c.port) for c in children if c.name == "node_exporter"],
            "mlflow": [],  # MLflow's /metrics needs prometheus-flask-exporter; off locally
            "prometheus": [address(settings, settings.prometheus_port)],
            "alertmanager": [
                address(settings, c.port) for c in children if c.name == "alertmanager"
            ],
        }
        prepare_prometheus(settings, project, targets)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_served_model(settings: Settings, retrain: bool) -> None:
    """Make sure the BentoML store has a champion: package it, training first if needed."""
    from bento.loader import ModelLoadError, latest_tag
    from train.cli import run_package, run_promote, run_train
    from train.registry import CHAMPION, get_alias
    from train.tracking import connect

    if not retrain:
        try:
            latest_tag(settings.model_name)
            return
        except ModelLoadError:
            pass
    client = connect(settings, create=True)
    if retrain or get_alias(client, settings.model_name, CHAMPION) is None:
        typer.secho("No served model yet: training the default model first.", fg="cyan")
        run_train(settings, None, None, "linear", None, 42)
        if not run_promote(settings, None, None, None) and not retrain:
            raise typer.Exit(1)
    run_package(settings, build=True)


def start(child: Child, logs: Path, project: Path) -> None:
    log = (logs / f"{child.name}.log").open("ab")
    child.proc = subprocess.Popen(
        child.argv,
        env=child.env,
        cwd=project,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us only; we stop the groups in order
    )
    log.close()


def healthy(child: Child) -> bool:
    try:
        with urllib.request.urlopen(child.url + child.health, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(children: list[Child], logs: Path) -> Child | None:
    """Wait for every child to be healthy; return the first that died or timed out."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(children)
    while pending:
        for child in list(pending):
            assert child.proc is not None
            if child.proc.poll() is not None:
                return child
            if healthy(child):
                pending.remove(child)
        if time.monotonic() > deadline:
            return pending[0]
        time.sleep(0.3)
    return None


def stop_all(children: list[Child]) -> None:
    """SIGTERM every process group, then SIGKILL what is left after 15 s."""
    for child in children:
        if child.proc is not None and child.proc.poll() is None:
            os.killpg(child.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()


def run_stack(settings: Settings, *, retrain: bool = False) -> int:
    """Start the stack and supervise it until Ctrl-C (exit 0) or a child dies (exit 1)."""
    project = Path(os.environ.get("CEPAGE_PROJECT_DIR", ".")).resolve()
    if not (project / "ui" / "app.py").is_file():
        typer.secho(f"Run `cepage up` from the cepage checkout ({project} is not).", fg="red")
        return 1
    children = plan(settings)
    busy = [c for c in children if not port_free(settings.host, c.port)]
    if busy:
        for c in busy:
            typer.secho(
                f"Port {c.port} ({c.name}) is already in use: stop what holds it (another "
                f"`make up`?) or set CEPAGE_{c.name.upper()}_PORT.",
                fg="red",
            )
        return 1
    ensure_served_model(settings, retrain)
    prepare_monitoring(settings, project, children)
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for child in children:
            start(child, logs, project)
        failed = wait_ready(children, logs)
        if failed is not None and not stopping:
            typer.secho(
                f"{failed.name} did not start; see {logs / (failed.name + '.log')}", fg="red"
            )
            return 1
        if not stopping:
            typer.secho("\ncepage is up:", fg="green", bold=True)
            typer.echo(f"  UI        {children[2].url}")
            typer.echo(f"  API       {children[1].url}   (OpenAPI: {children[1].url}/docs.json)")
            typer.echo(f"  MLflow    {children[0].url}")
            for child in children[3:]:
                typer.echo(f"  {child.name:<9} {child.url}")
            if not any(c.name == "prometheus" for c in children):
                typer.echo(f"  (no Prometheus on this machine: `{INSTALL_HINT}` adds monitoring)")
            typer.echo(f"  logs      {logs}/")
            typer.echo("Retrain from another shell with `.venv/bin/cepage retrain`; Ctrl-C stops.")
        while not stopping:
            dead = next((c for c in children if c.proc and c.proc.poll() is not None), None)
            if dead is not None:
                typer.secho(f"{dead.name} exited; see {logs / (dead.name + '.log')}", fg="red")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        typer.echo("Stopping the stack...")
        stop_all(children)
