"""What the tests need on top of the project's process helper (``stack.processes``): skipping
or failing on a missing tool, tools built offline, and a real `bentoml serve` on a free port.

The process and home helpers are re-exported so that a test imports them from one place."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from stack.home import BIN, cepage, stack_env
from stack.processes import ROOT, free_port, running
from tests.support import skips

__all__ = [
    "BIN",
    "ROOT",
    "bentoml_serve",
    "built_by",
    "cepage",
    "free_port",
    "in_ci",
    "ports_below_the_ephemeral_range",
    "private_bentoml_home",
    "require",
    "require_binary",
    "running",
    "stack_env",
    "tool_or_built",
]


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_CHOSEN_PORT = 20000  # above the ports servers default to (3000, 5000, 8501, 9090, ...)


def ports_below_the_ephemeral_range(count: int) -> list[int]:
    """``count`` distinct free ports below the kernel's ephemeral range, for servers that bind
    long after their ports are chosen. free_port() returns an ephemeral port, which any outgoing
    connection made meanwhile may take (found in CI: `cepage up` trains a model first, its MLflow
    client connects and connects, and Prometheus failed 14 s later with "address already in
    use"). Below the range, only a server that binds it explicitly can."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    span = max(low - LOWEST_CHOSEN_PORT, 1)
    start = LOWEST_CHOSEN_PORT + (os.getpid() * 7919) % span  # apart from other test processes
    chosen: list[int] = []
    for offset in range(span):
        port = LOWEST_CHOSEN_PORT + (start - LOWEST_CHOSEN_PORT + offset) % span
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"fewer than {count} free ports in {LOWEST_CHOSEN_PORT}-{low - 1}")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when a tool is missing on a laptop; fail in CI so CI never goes green by skipping."""
    if condition:
        return
    skips.note(reason)  # for the summary at the end of the run (tests/support/skips.py)
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"`{name}` is not installed")
    return str(path)


def built_by(script: str, what: str, timeout: float = 1800) -> Path:
    """The path a tests/tools/ builder prints on its last line (it builds, or reuses its cache).

    The offline route for tools that have no package here (Go-built linters, the Scaleway
    provider mirror); a failed build skips on a laptop and fails with CI=true.
    """
    try:
        built = subprocess.run(
            ["bash", str(ROOT / "tests" / "tools" / script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:  # no bash
        built = subprocess.CompletedProcess([], 127, "", str(exc))
    require(
        built.returncode == 0,
        f"{what}: tests/tools/{script} failed (it needs the Go toolchain):\n{built.stderr[-3000:]}",
    )
    return Path(built.stdout.strip().splitlines()[-1])


def tool_or_built(name: str, script: str) -> Path:
    """``name`` from PATH, else built from source by ``tests/tools/<script>``."""
    found = shutil.which(name)
    return Path(found) if found else built_by(script, f"{name} is not installed")


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
