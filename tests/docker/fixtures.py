"""The session's Docker engine and project images, one instance per pytest process.

Registered by tests/conftest.py (``pytest_plugins``) rather than defined in tests/docker's
conftest: the Docker tests and the rehearsal both use them, and a fixture defined in (or
imported into) two conftests is made twice per session, so every image was built twice.
`make test` runs the rehearsal in a process of its own beside the other layers
(tests/tools/suite.py): that process builds its own images, tagged apart.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.conftest import BUILD_TIMEOUT, Docker, Images
from tests.support.docker_engine import private_engine
from tests.support.procs import BIN, ROOT, stack_env
from tests.tools import docker_engine, suite


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    """The private engine (started here and stopped at the end, by its pid) with a base image."""
    with private_engine() as (engine, env):
        yield Docker(env=env)
        if engine.started_here:
            # Our own cache only, never a developer's engine.
            docker_engine.prune_stale_images(env)


@pytest.fixture(scope="session")
def bento_tag(trained_home: Path) -> str:
    """A Bento built with the real `bentoml build` from bentofile.yaml and the trained champion."""
    env = stack_env(trained_home)
    done = subprocess.run(
        [str(BIN / "bentoml"), "build", "-f", "bentofile.yaml", "--output", "tag", "."],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"bentoml build failed:\n{done.stdout}\n{done.stderr}"
    tag = done.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("cepage:"), done.stdout
    return tag


@pytest.fixture(scope="session")
def images(docker: Docker, trained_home: Path, bento_tag: str) -> Images:
    """Every image, built for real: service (containerize + slim stage), UI, MLflow, retrain.

    Tagged ``$CEPAGE_TEST_IMAGE_TAG`` ("test" by default): `make test` runs the rehearsal in a
    pytest process of its own beside the other layers (tests/tools/suite.py), and its own tag keeps
    either from replacing an image the other is using.
    """
    tag = os.environ.get(suite.IMAGE_TAG_VARIABLE, "test")
    images = Images(
        service=f"cepage-service:{tag}",
        ui=f"cepage-ui:{tag}",
        mlflow=f"cepage-mlflow:{tag}",
        retrain=f"cepage-retrain:{tag}",
    )
    bento_image = f"cepage-service:bento-{tag}"
    env = {**stack_env(trained_home), **docker.env}
    with docker.replacing(bento_image):
        done = subprocess.run(
            [str(BIN / "bentoml"), "containerize", bento_tag, "-t", bento_image],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    assert done.returncode == 0, (
        f"bentoml containerize failed:\n{done.stdout[-4000:]}\n" + (done.stderr[-4000:])
    )
    docker.build(
        images.service,
        "compose/service/Dockerfile",
        ROOT / "compose" / "service",
        BENTO_IMAGE=bento_image,
    )
    docker.build(images.ui, "compose/ui/Dockerfile", ROOT)
    docker.build(images.mlflow, "compose/mlflow/Dockerfile", ROOT)
    docker.build(images.retrain, "compose/retrain/Dockerfile", ROOT)
    return images
