"""Fixtures of the reliability tests: a private copy of the trained store, servers with handles.

These tests start real processes (bentoml serve, Prometheus, the cepage CLI), break them on purpose
and measure how the service behaves. Each is bounded in time; what they measure is printed (run
with ``-s`` to see it) and reported in docs/operations.md.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.procs import BIN, free_port, private_bentoml_home, running, stack_env


@dataclass(frozen=True)
class Server:
    """A running `bentoml serve`: its URL and its arbiter process."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def metadata(self) -> dict[str, Any]:
        response = requests.get(f"{self.url}/metadata", timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def median_record(self) -> dict[str, float]:
        features = self.metadata()["feature_schema"]["features"]
        return {f["name"]: f["median"] for f in features}


def serve_argv(port: int) -> list[str]:
    return [str(BIN / "bentoml"), "serve", "bento.service:Classifier"] + [
        "--host", "127.0.0.1", "--port", str(port)
    ]  # fmt: skip


@contextmanager
def bentoml_server(home: Path, *, workers: int = 1, **env: str) -> Iterator[Server]:
    """Like ``tests.support.procs.bentoml_serve``, but also hands out the arbiter process."""
    port = free_port()
    environ = stack_env(home, CEPAGE_WORKERS=str(workers), **env)
    environ["BENTOML_HOME"] = str(private_bentoml_home(home, port))
    url = f"http://127.0.0.1:{port}"
    log = home / f"serve-{port}.log"
    with running(serve_argv(port), log=log, ready_url=f"{url}/readyz", env=environ) as proc:
        yield Server(url, proc, log)


@pytest.fixture
def own_home(trained_home: Path, tmp_path: Path) -> Path:
    """A copy of the session's trained home that a test may retrain, corrupt or break.

    The copy's MLflow runs keep their artifacts where the original put them (absolute URIs in
    the store); new runs only add files there. Per-server homes (symlinks to the original
    store) are left out so that servers started on the copy read the copy's models.
    """
    home = tmp_path / "home"
    shutil.copytree(
        trained_home, home, ignore=shutil.ignore_patterns("servers", "serve-*.log", "*.lua")
    )
    return home
