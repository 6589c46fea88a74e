"""Fixtures for the Docker tests: a private dockerd, a base image, and the images built for real.

The engine and the local base image come from the offline stand-ins in ``tests/tools/``
(``docker_engine.py``: dockerd started by hand with its own data root under
``~/.cache/cepage/docker/``, so layers are reused between runs; ``base_image.py``:
``python:3.11-slim`` pulled when possible, else made with debootstrap).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.procs import BIN, ROOT, free_port

BUILD_TIMEOUT = 1800
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"


def pytest_configure(config: pytest.Config) -> None:
    # Until pyproject.toml registers it (--strict-markers).
    config.addinivalue_line("markers", "docker: real Docker builds and containers, compose checks")


@dataclass(frozen=True)
class Docker:
    """Runs the docker CLI against the private engine."""

    env: Mapping[str, str]

    def run(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["docker", *args],
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return done

    def build(self, tag: str, dockerfile: str, context: Path, **build_args: str) -> None:
        argv = ["build", "-q", "-f", dockerfile, "-t", tag]
        for key, value in build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        with self.replacing(tag):
            self.run(*argv, str(context), timeout=BUILD_TIMEOUT)

    def image_id(self, tag: str) -> str | None:
        done = self.run("image", "inspect", "--format", "{{.Id}}", tag, check=False)
        return done.stdout.strip() or None if done.returncode == 0 else None

    @contextmanager
    def replacing(self, tag: str) -> Iterator[None]:
        """Remove the image ``tag`` pointed at before a rebuild, once the new one is tagged.

        Each run's new model makes new service layers; without this the cache grows by the
        old images every run. The build stages (the layer cache) are left alone.
        """
        old = self.image_id(tag)
        yield
        if old is not None and old != self.image_id(tag):
            self.run("rmi", old, check=False)

    def inspect(self, name: str) -> dict[str, Any]:
        body: list[dict[str, Any]] = json.loads(self.run("inspect", name).stdout)
        return body[0]

    def logs(self, name: str) -> str:
        done = self.run("logs", "--tail", "80", name, check=False)
        return done.stdout + done.stderr


@dataclass(frozen=True)
class Images:
    """Tags of the images built for this session."""

    service: str
    ui: str
    mlflow: str
    retrain: str

    def all(self) -> dict[str, str]:
        return {"service": self.service, "ui": self.ui, "mlflow": self.mlflow,
                "retrain": self.retrain}  # fmt: skip


@dataclass(frozen=True)
class Container:
    name: str
    port: int
    """The container port published on 127.0.0.1 (0 when none)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Network:
    """A user-defined bridge network and the containers started on it (removed at the end)."""

    docker: Docker
    name: str
    started: list[str]
    volumes: list[str] = field(default_factory=list)

    def start(
        self,
        image: str,
        alias: str,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        volumes: Sequence[str] = (),
        command: Sequence[str] = (),
        flags: Sequence[str] = (),
    ) -> Container:
        name = f"{self.name}-{alias}"
        host_port = free_port() if port is not None else 0
        argv = ["run", "-d", "--name", name, "--network", self.name, "--network-alias", alias]
        argv += flags
        if port is not None:
            argv += ["-p", f"127.0.0.1:{host_port}:{port}"]
        for key, value in (env or {}).items():
            argv += ["-e", f"{key}={value}"]
        for volume in volumes:
            argv += ["-v", volume]
            source = volume.split(":", 1)[0]
            if "/" not in source and source not in self.volumes:
                self.volumes.append(source)  # a named volume: removed with the network
        self.started.append(name)
        self.docker.run(*argv, image, *command)
        return Container(name=name, port=host_port)

    def wait_http(self, container: Container, path: str, timeout: float = 180) -> None:
        """Wait until ``path`` answers 200 on the published port; fail with the logs if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.docker.inspect(container.name)["State"]
            if not state["Running"]:
                raise AssertionError(
                    f"{container.name} exited ({state['ExitCode']}):\n"
                    f"{self.docker.logs(container.name)}"
                )
            try:
                if requests.get(container.url + path, timeout=3).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise AssertionError(
            f"{container.url}{path} not ready after {timeout}s:\n{self.docker.logs(container.name)}"
        )

    def wait_healthy(self, container: Container, timeout: float = 180) -> str:
        """Wait for the image's own HEALTHCHECK to report; return the final status."""
        deadline = time.monotonic() + timeout
        status = "none"
        while time.monotonic() < deadline:
            health = self.docker.inspect(container.name)["State"].get("Health") or {}
            status = str(health.get("Status", "none"))
            if status in ("healthy", "unhealthy", "none"):
                return status
            time.sleep(2)
        return status


@pytest.fixture(scope="module")
def network(docker: Docker) -> Iterator[Network]:
    name = f"cepage-test-{uuid.uuid4().hex[:8]}"
    docker.run("network", "create", name)
    net = Network(docker=docker, name=name, started=[])
    try:
        yield net
    finally:
        for container in net.started:
            docker.run("rm", "-f", "-v", container, check=False)
        docker.run("network", "rm", name, check=False)
        for volume in net.volumes:
            docker.run("volume", "rm", "-f", volume, check=False)


def hardening(service: str) -> list[str]:
    """`docker run` flags for the compose file's hardening of ``service``: its capabilities,
    security options, read-only root filesystem, tmpfs, user and sysctls, as compose sets them."""
    config = yaml.safe_load(COMPOSE_FILE.read_text())["services"][service]
    flags: list[str] = []
    for cap in config.get("cap_drop") or []:
        flags += ["--cap-drop", cap]
    for cap in config.get("cap_add") or []:
        flags += ["--cap-add", cap]
    for option in config.get("security_opt") or []:
        flags += ["--security-opt", option]
    if config.get("read_only"):
        flags.append("--read-only")
    for path in config.get("tmpfs") or []:
        flags += ["--tmpfs", path]
    if "user" in config:
        flags += ["--user", str(config["user"])]
    for key, value in (config.get("sysctls") or {}).items():
        flags += ["--sysctl", f"{key}={value}"]
    return flags


def assert_hardened(docker: Docker, container: str) -> None:
    """The running container has no capability, no-new-privileges and a read-only root."""
    host = docker.inspect(container)["HostConfig"]
    assert [c.upper() for c in host["CapDrop"] or []] in (["ALL"], ["CAP_ALL"]), host["CapDrop"]
    assert "no-new-privileges:true" in (host["SecurityOpt"] or []), host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    written = docker.run(
        "exec", container, "sh", "-c", "touch /cepage-probe", check=False
    )  # fmt: skip
    assert written.returncode != 0 and "Read-only file system" in written.stderr, written


def docker_tool(name: str) -> str | None:
    """A linter installed in the venv (pip) or on PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def compose_env(**extra: str) -> dict[str, str]:
    """Environment for `docker-compose config`: the .env.example values, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEPAGE_", "MLFLOW_"))}
    for raw in (ROOT / ".env.example").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value.strip("'\"")
    env.update(extra)
    return env
