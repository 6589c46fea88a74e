"""``cepage up``: the whole stack on this machine, no Docker, no cloud.

MLflow (tracking server + UI over the embedded SQLite store), the model service (``bentoml serve``
from the checkout, reloading a newly packaged champion on its own), the Streamlit UI and, when
installed, Prometheus, Alertmanager and node_exporter: each a child process with its log under
``.cepage/logs/``. Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from stack.monitoring import INSTALL_HINT, monitoring_plan, prepare_monitoring
from stack.processes import answers, port_free, start, stop_groups
from train.settings import Settings

# How often the local service looks for a newly packaged model (seconds).
RELOAD_SECONDS = "1"
READY_TIMEOUT = 120.0


@dataclass
class Child:
    """One process of the stack."""

    name: str
    argv: list[str]
    port: int
    health: str
    url: str
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    proc: subprocess.Popen[bytes] | None = None


def _bin(name: str) -> str:
    """A console script of the current environment (the venv's, not whatever is on PATH)."""
    return str(Path(sys.executable).parent / name)


def plan(settings: Settings) -> dict[str, Child]:
    """The processes to start, by name, in start order, with their ports and health URLs."""
    host = settings.host
    mlflow_cmd = [_bin("mlflow"), "server", "--host", host, "--port", str(settings.mlflow_port)]
    # One user locally: one worker instead of MLflow's default four (~150 MB each).
    mlflow_cmd += ["--workers", "1"]
    if settings.uses_local_store:
        mlflow_cmd += ["--backend-store-uri", settings.tracking_uri]
        mlflow_cmd += ["--default-artifact-root", settings.artifact_root.as_uri()]
    api_cmd = [_bin("bentoml"), "serve", "bento.service:Classifier", "--host", host]
    api_cmd += ["--port", str(settings.api_port)]
    ui_cmd = [sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.headless", "true"]
    ui_cmd += ["--server.address", host, "--server.port", str(settings.ui_port)]
    ui_cmd += ["--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    children = [
        Child(
            "mlflow",
            mlflow_cmd,
            settings.mlflow_port,
            "/health",
            _url(host, settings.mlflow_port),
            # No server-side job runner (huey consumers): GenAI features cepage does not use.
            {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        ),
        Child(
            "api",
            api_cmd,
            settings.api_port,
            "/readyz",
            settings.api_url,
            {
                **os.environ,
                "CEPAGE_MODEL_RELOAD_SECONDS": RELOAD_SECONDS,
                # Where `cepage dataset` reads it back (train/settings.py: the user's own value
                # wins, `off` included; else $CEPAGE_HOME/production).
                "CEPAGE_PREDICTION_LOG": settings.prediction_log,
            },
        ),
        Child(
            "ui",
            ui_cmd,
            settings.ui_port,
            "/_stcore/health",
            _url(host, settings.ui_port),
            {
                **os.environ,
                "CEPAGE_API_URL": settings.api_url,
                # MLflow's experiments page: `cepage report` logs to <experiment>-monitoring.
                "CEPAGE_DRIFT_REPORTS_URL": os.environ.get(
                    "CEPAGE_DRIFT_REPORTS_URL", f"{_url(host, settings.mlflow_port)}/#/experiments"
                ),
            },
        ),
    ]
    for name, argv, port, health in monitoring_plan(settings):
        children.append(Child(name, argv, port, health, _url(host, port)))
    return {child.name: child for child in children}


def _url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def ensure_served_model(settings: Settings, retrain: bool) -> None:
    """Make sure the BentoML store has a champion: package it, training first if needed.

    Raises:
        typer.Exit: a step failed, or the gate rejected the first model (nothing to serve).
    """
    from bento.loader import ModelLoadError, latest_tag
    from contracts.names import CHAMPION
    from train.errors import StepError
    from train.gate import promote
    from train.package import package
    from train.registry import get_alias
    from train.tracking import connect
    from train.training import train

    if not retrain:
        try:
            latest_tag(settings.model_name)
            return
        except ModelLoadError:
            pass
    try:
        client = connect(settings, create=True)
        if retrain or get_alias(client, settings.model_name, CHAMPION) is None:
            typer.secho("No served model yet: training the default model first.", fg="cyan")
            trained = train(settings)
            version, decision = promote(settings, version=trained.version)
            if decision.promote:
                typer.secho(f"Promoted version {version} to @champion: {decision.reason}.")
            else:
                typer.secho(
                    f"Rejected version {version} (now @challenger; @champion unchanged): "
                    f"{decision.reason}.",
                    fg="yellow",
                )
                if not retrain:
                    raise typer.Exit(1)
        packaged = package(settings, build=True)
    except StepError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Serving MLflow version {packaged.mlflow_version} as {packaged.model_tag}.")


def wait_all_ready(children: list[Child]) -> Child | None:
    """Wait for every child to be healthy; return the first that died or timed out."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(children)
    while pending:
        for child in list(pending):
            assert child.proc is not None
            if child.proc.poll() is not None:
                return child
            if answers(child.url + child.health):
                pending.remove(child)
        if time.monotonic() > deadline:
            return pending[0]
        time.sleep(0.3)
    return None


def announce(children: dict[str, Child], logs: Path) -> None:
    """Tell the user where everything is."""
    typer.secho("\ncepage is up:", fg="green", bold=True)
    api = children["api"]
    typer.echo(f"  UI        {children['ui'].url}")
    typer.echo(f"  API       {api.url}   (OpenAPI: {api.url}/docs.json)")
    typer.echo(f"  MLflow    {children['mlflow'].url}")
    for child in children.values():
        if child.name not in ("ui", "api", "mlflow"):
            typer.echo(f"  {child.name:<9} {child.url}")
    if "prometheus" not in children:
        typer.echo(f"  (no Prometheus on this machine: `{INSTALL_HINT}` adds monitoring)")
    typer.echo(f"  logs      {logs}/")
    typer.echo("Retrain from another shell with `.venv/bin/cepage retrain`; Ctrl-C stops.")


def run_stack(settings: Settings, *, retrain: bool = False) -> int:
    """Start the stack and supervise it until Ctrl-C (exit 0) or a child dies (exit 1)."""
    project = Path(os.environ.get("CEPAGE_PROJECT_DIR", ".")).resolve()
    if not (project / "ui" / "app.py").is_file():
        typer.secho(f"Run `cepage up` from the cepage checkout ({project} is not).", fg="red")
        return 1
    children = plan(settings)
    busy = [c for c in children.values() if not port_free(settings.host, c.port)]
    for c in busy:
        typer.secho(
            f"Port {c.port} ({c.name}) is already in use: stop what holds it (another "
            f"`make up`?) or set CEPAGE_{c.name.upper()}_PORT.",
            fg="red",
        )
    if busy:
        return 1
    ensure_served_model(settings, retrain)
    prepare_monitoring(settings, project, {c.name: c.port for c in children.values()})
    logs = settings.home / "logs"

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = list(children.values())
    try:
        for child in started:
            child.proc = start(
                child.argv, log=logs / f"{child.name}.log", env=child.env, cwd=project
            )
        failed = wait_all_ready(started)
        if failed is not None and not stopping:
            typer.secho(
                f"{failed.name} did not start; see {logs / (failed.name + '.log')}", fg="red"
            )
            return 1
        if not stopping:
            announce(children, logs)
        while not stopping:
            dead = next((c for c in started if c.proc and c.proc.poll() is not None), None)
            if dead is not None:
                typer.secho(f"{dead.name} exited; see {logs / (dead.name + '.log')}", fg="red")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        typer.echo("Stopping the stack...")
        stop_groups([c.proc for c in started if c.proc is not None])
