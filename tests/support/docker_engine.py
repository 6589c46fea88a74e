"""The private Docker engine the docker and ansible tests share (scripts/ci/docker_engine.py).

Started once per test session (or reused when one already runs), with the base image the
Dockerfiles start from; stopped at the end only if this session started it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from tests.support.procs import ROOT, require

MODULE_NAME = "cepage_docker_engine"


def engine_module() -> ModuleType:
    """scripts/ci/docker_engine.py, loaded once (it is a script, not a package module)."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    path = ROOT / "scripts" / "ci" / "docker_engine.py"
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@contextmanager
def private_engine() -> Iterator[tuple[Any, dict[str, str]]]:
    """(the engine, the environment pointing the docker CLI at it), with the base image made.

    A missing or unstartable engine skips on a laptop and fails with CI=true (``require``).
    """
    require(shutil.which("dockerd") is not None, "`dockerd` is not installed (docker.io)")
    require(shutil.which("docker") is not None, "the `docker` CLI is not installed (docker.io)")
    shim = engine_module()
    try:
        engine = shim.existing() or shim.start()
    except RuntimeError as exc:
        require(False, f"dockerd cannot start: {exc}")
        raise
    try:
        try:
            shim.ensure_base_image(engine)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            require(False, f"no base image python:3.11-slim and none can be made: {exc}")
        env = engine.env()
        # The legacy builder: BentoML asks for BuildKit, which needs buildx (not packaged here).
        buildx = subprocess.run(
            ["docker", "buildx", "version"], env=env, capture_output=True, check=False
        )
        if buildx.returncode != 0:
            env["DOCKER_BUILDKIT"] = "0"
        yield engine, env
    finally:
        if engine.started_here:
            shim.stop_pid(engine.pid)
