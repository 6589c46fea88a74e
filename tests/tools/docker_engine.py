#!/usr/bin/env python3
"""Offline stand-in for tests and CI: a private Docker engine where no system one runs.

Not part of the user's path: on a machine with Docker (systemd) and Docker Hub, nothing here is
needed (``existing()`` finds the user's engine and it is used as it is). Here there is no
systemd and no registry, so ``start`` runs ``dockerd`` with its own data root under
``~/.cache/cepage/docker/`` (images and layers survive between runs, so CI on the same machine
reuses them), its own exec root, socket and pidfile, and prints ``DOCKER_HOST=unix://...``;
``stop`` ends it by its pid. ``base-image`` also makes ``python:3.11-slim`` in it
(``tests/tools/base_image.py``). Standard library only. Usage, from the repository root::

    python3 -m tests.tools.docker_engine start        # prints DOCKER_HOST=...
    python3 -m tests.tools.docker_engine base-image   # needs DOCKER_HOST or a started engine
    python3 -m tests.tools.docker_engine stop

(``python3 tests/tools/docker_engine.py ...`` works the same.)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a file: import `tests.tools` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from tests.tools import base_image

CACHE = Path(os.environ.get("CEPAGE_CACHE", Path.home() / ".cache" / "cepage")) / "docker"


@dataclass(frozen=True)
class Engine:
    """A running private dockerd."""

    pid: int
    host: str
    """``unix:///...``, the value for ``DOCKER_HOST``."""
    started_here: bool
    """False when an engine already ran on this data root (then it is left running)."""

    def env(self) -> dict[str, str]:
        """The process environment with ``DOCKER_HOST`` pointing at this engine."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        return env


def _paths(cache: Path) -> tuple[Path, Path, Path, Path]:
    # The exec root and socket live under /tmp: unix socket paths are limited to ~108 bytes.
    key = hashlib.sha256(str(cache.resolve()).encode()).hexdigest()[:10]
    run = Path(tempfile.gettempdir()) / f"cepage-dockerd-{key}"
    return cache / "data", run / "exec", run / "docker.sock", run / "docker.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ping(host: str) -> bool:
    env = dict(os.environ, DOCKER_HOST=host)
    done = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
    )
    return done.returncode == 0


def existing() -> Engine | None:
    """The engine the environment already points at (DOCKER_HOST or the default socket), if any.

    The normal path: a developer's Docker is used as it is; the private engine is only started
    where none answers (no systemd here). CEPAGE_DOCKER_PRIVATE=1 forces the private one.
    """
    if os.environ.get("CEPAGE_DOCKER_PRIVATE") == "1" or shutil.which("docker") is None:
        return None
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if _ping(host):
            return Engine(pid=0, host=host, started_here=False)
    except subprocess.TimeoutExpired:
        return None
    return None


def start(cache: Path = CACHE, timeout: float = 60) -> Engine:
    """Start (or reuse) the private dockerd on ``cache``; raise RuntimeError when it cannot run."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        raise RuntimeError("dockerd/docker are not installed (apt-get install docker.io)")
    data, exec_root, sock, pidfile = _paths(cache)
    host = f"unix://{sock}"
    if pidfile.exists():
        pid = int(pidfile.read_text().strip() or 0)
        if pid and _alive(pid) and _ping(host):
            return Engine(pid=pid, host=host, started_here=False)
    for path in (data, exec_root):
        path.mkdir(parents=True, exist_ok=True)
    log = sock.parent / "dockerd.log"
    argv = [
        "dockerd",
        "--data-root",
        str(data),
        "--exec-root",
        str(exec_root),
        "-H",
        host,
        "--pidfile",
        str(pidfile),
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"dockerd exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}"
            )
        if sock.exists() and _ping(host):
            return Engine(pid=proc.pid, host=host, started_here=True)
        time.sleep(0.5)
    stop_pid(proc.pid)
    raise RuntimeError(f"dockerd not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def stop_pid(pid: int, timeout: float = 30) -> None:
    """Stop a dockerd by its pid (SIGTERM, then SIGKILL)."""
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it when it is our child; harmless otherwise.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        if not _alive(pid):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def prune_stale_images(env: dict[str, str]) -> None:
    """Drop the private engine's dangling images unused for three days.

    Each run's new model makes new service layers, and the build stages are dangling images that
    serve as the layer cache: the recent ones are kept. For the private engine only (the caller
    started it), never a developer's.
    """
    subprocess.run(
        ["docker", "image", "prune", "-f", "--filter", "until=72h"],
        env=env, capture_output=True, check=False, timeout=300,
    )  # fmt: skip  # nosec B603 B607: fixed arguments


def stop(cache: Path = CACHE) -> None:
    """Stop the engine started on ``cache`` (by the pid in its pidfile)."""
    _, _, _, pidfile = _paths(cache)
    if pidfile.exists():
        pid = int(pidfile.read_text().strip() or 0)
        if pid:
            stop_pid(pid)


def main(argv: list[str] | None = None) -> int:
    """Command line: start | stop | base-image."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "stop", "base-image"))
    parser.add_argument(
        "--tag", default=base_image.BASE_TAG, help="base image tag to make (base-image)"
    )
    args = parser.parse_args(argv)
    if args.command == "stop":
        stop()
        return 0
    try:
        engine = existing() or start()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.command == "base-image":
        print(
            f"{args.tag}: {base_image.ensure_base_image(engine.env(), CACHE, args.tag)}",
            file=sys.stderr,
        )
    print(f"DOCKER_HOST={engine.host}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
