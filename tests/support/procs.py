"""Starting real processes for tests (the CLI, bentoml serve) and waiting for them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when a tool is missing on a laptop; fail in CI so CI never goes green by skipping."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"`{name}` is not installed")
    return str(path)


def built_by(script: str, what: str, timeout: float = 1800) -> Path:
    """The path a scripts/ci/ builder prints on its last line (it builds, or reuses its cache).

    The offline route for tools that have no package here (Go-built linters, the Scaleway
    provider mirror); a failed build skips on a laptop and fails with CI=true.
    """
    try:
        built = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ci" / script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:  # no bash
        built = subprocess.CompletedProcess([], 127, "", str(exc))
    require(
        built.returncode == 0,
        f"{what}: scripts/ci/{script} failed (it needs the Go toolchain):\n{built.stderr[-3000:]}",
    )
    return Path(built.stdout.strip().splitlines()[-1])


def tool_or_built(name: str, script: str) -> Path:
    """``name`` from PATH, else built from source by ``scripts/ci/<script>``."""
    found = shutil.which(name)
    return Path(found) if found else built_by(script, f"{name} is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a cepage process whose whole state lives in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "BENTOML_"))}
    env.update(
        CEPAGE_HOME=str(home),
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
        BENTOML_HOME=str(home / "bentoml"),
        MLFLOW_DISABLE_TELEMETRY="true",
        BENTOML_DO_NOT_TRACK="true",
        CEPAGE_PROJECT_DIR=str(ROOT),
    )
    env.update(extra)
    return env


def cepage(
    *args: str, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real `cepage` console script."""
    return subprocess.run(
        [str(BIN / "cepage"), *args],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_http(url: str, proc: subprocess.Popen[bytes] | None, timeout: float, log: Path) -> None:
    """Wait until ``url`` answers 200; fail with the process log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{url} not ready after {timeout}s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Stop a process group started with start_new_session=True, and every descendant.

    BentoML starts each worker in a session of its own, outside the group: the descendants are
    listed first so that none survives a SIGKILL of the group.
    """
    if proc.poll() is not None:
        return
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _, alive = psutil.wait_procs(descendants, timeout=5)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@contextmanager
def running(
    argv: list[str],
    *,
    log: Path,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in its own session (output to ``log``), wait for ``ready_url``, stop after."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            env=dict(env) if env is not None else None,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(ready_url, proc, timeout=timeout, log=log)
        yield proc
    finally:
        stop(proc)


def private_bentoml_home(home: Path, port: int) -> Path:
    """A BENTOML_HOME of its own for one server, sharing the model store of ``home``.

    `bentoml serve` wipes $BENTOML_HOME/prometheus_multiproc_dir when it starts, so two servers
    on one home would erase each other's metrics.
    """
    private = home / "servers" / str(port)
    private.mkdir(parents=True, exist_ok=True)
    shared = home / "bentoml" / "models"
    shared.mkdir(parents=True, exist_ok=True)
    link = private / "models"
    if not link.exists():
        link.symlink_to(shared, target_is_directory=True)
    return private


@contextmanager
def bentoml_serve(
    home: Path, *, workers: int = 1, extra_env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """A real `bentoml serve bento.service:Classifier` on a free port; yields its base URL."""
    port = free_port()
    env = stack_env(home, CEPAGE_WORKERS=str(workers), **dict(extra_env or {}))
    env["BENTOML_HOME"] = str(private_bentoml_home(home, port))
    url = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "bentoml"), "serve", "bento.service:Classifier"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    log = home / f"serve-{port}.log"
    with running(argv, log=log, ready_url=f"{url}/readyz", env=env):
        yield url
