"""The private Docker engine the docker and ansible tests share (tests/tools/docker_engine.py).

Started once per test session (or reused when one already runs), with the base image the
Dockerfiles start from (tests/tools/base_image.py); stopped at the end only if this session
started it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.procs import require
from tests.tools import base_image, docker_engine
from tests.tools.docker_engine import Engine


@contextmanager
def private_engine() -> Iterator[tuple[Engine, dict[str, str]]]:
    """(the engine, the environment pointing the docker CLI at it), with the base image made.

    A missing or unstartable engine skips on a laptop and fails with CI=true (``require``).
    """
    require(shutil.which("dockerd") is not None, "`dockerd` is not installed (docker.io)")
    require(shutil.which("docker") is not None, "the `docker` CLI is not installed (docker.io)")
    try:
        engine = docker_engine.existing() or docker_engine.start()
    except RuntimeError as exc:
        require(False, f"dockerd cannot start: {exc}")
        raise
    try:
        env = engine.env()
        try:
            base_image.ensure_base_image(env, docker_engine.CACHE)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            require(False, f"no base image {base_image.BASE_TAG} and none can be made: {exc}")
        # The legacy builder: BentoML asks for BuildKit, which needs buildx (not packaged here).
        buildx = subprocess.run(
            ["docker", "buildx", "version"], env=env, capture_output=True, check=False
        )
        if buildx.returncode != 0:
            env["DOCKER_BUILDKIT"] = "0"
        yield engine, env
    finally:
        if engine.started_here:
            docker_engine.stop_pid(engine.pid)
