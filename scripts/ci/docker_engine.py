#!/usr/bin/env python3
"""Offline shim for tests and CI: a private Docker engine and a locally made base image.

Not part of the user's path: on a machine with Docker (systemd) and Docker Hub, nothing here is
needed. Here there is no systemd and no registry, so:

* ``start`` runs ``dockerd`` with its own data root under ``~/.cache/cepage/docker/`` (images and
  layers survive between runs, so CI on the same machine reuses them), its own exec root, socket
  and pidfile; it prints ``DOCKER_HOST=unix://...``. ``stop`` ends it by its pid.
* ``base-image`` makes ``python:3.11-slim`` *inside that private engine only* when it cannot be
  pulled: ``debootstrap bookworm`` with python3/pip/venv (Debian bookworm's python3 is 3.11), the
  host's CA bundle baked in (so pip reaches PyPI over HTTPS from inside a build), imported with
  ``docker import`` and tagged with the upstream name, so every ``FROM`` (BentoML's generated
  Dockerfile included) works unchanged. The rootfs tarball is cached.

Standard library only. Usage::

    python3 scripts/ci/docker_engine.py start        # prints DOCKER_HOST=...
    python3 scripts/ci/docker_engine.py base-image   # needs DOCKER_HOST or a started engine
    python3 scripts/ci/docker_engine.py stop
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("CEPAGE_CACHE_DIR", Path.home() / ".cache" / "cepage")) / "docker"
BASE_TAG = "python:3.11-slim"
SUITE = "bookworm"
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# The upstream image's environment, so images built FROM it behave the same.
IMPORT_CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    # pip (certifi), uv (webpki roots) and requests do not read the system store by default:
    # point them at the bundle that now holds the host's CA.
    "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
    "ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
    'CMD ["python3"]',
)


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


def stop(cache: Path = CACHE) -> None:
    """Stop the engine started on ``cache`` (by the pid in its pidfile)."""
    _, _, _, pidfile = _paths(cache)
    if pidfile.exists():
        pid = int(pidfile.read_text().strip() or 0)
        if pid:
            stop_pid(pid)


def _docker(
    engine: Engine, *args: str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        env=engine.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def has_image(engine: Engine, tag: str) -> bool:
    """Whether ``tag`` is in the engine's image store."""
    return _docker(engine, "image", "inspect", tag).returncode == 0


def can_pull(engine: Engine, tag: str) -> bool:
    """Try the normal path first: pull ``tag`` from its registry (fails fast offline)."""
    return _docker(engine, "pull", "-q", tag, timeout=120).returncode == 0


def rootfs_tarball(cache: Path = CACHE) -> Path:
    """The debootstrap'd bookworm rootfs (python3, pip, venv, CAs + host CA) as a cached tarball."""
    tarball = cache / f"rootfs-{SUITE}-python3.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp) / "rootfs"
        mirror = os.environ.get("CEPAGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(root), mirror],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        _adapt_rootfs(root)
        partial = tarball.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(root, arcname=".")
        partial.rename(tarball)
    return tarball


def _adapt_rootfs(root: Path) -> None:
    """Make the Debian rootfs behave like python:3.11-slim where images rely on it."""
    # Trust what the host trusts (a proxy's CA on corporate networks). Appended to the bundle
    # and kept as its own file so update-ca-certificates in later layers keeps it.
    if HOST_CA.exists():
        extra = root / "usr/local/share/ca-certificates/cepage-host-bundle.crt"
        extra.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HOST_CA, extra)
        bundle = root / "etc/ssl/certs/ca-certificates.crt"
        with bundle.open("ab") as out:
            out.write(b"\n" + HOST_CA.read_bytes())
    # The upstream image's pip is not "externally managed" and has `python`/`pip` on PATH.
    for marker in (root / "usr/lib").glob("python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    bindir = root / "usr/local/bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        link = bindir / name
        if not link.exists():
            link.symlink_to(target)
    # Keep the image small: no apt lists or caches (later layers run apt-get update).
    for sub in ("var/lib/apt/lists", "var/cache/apt/archives"):
        for entry in (root / sub).glob("*"):
            if entry.is_file():
                entry.unlink()


def ensure_base_image(engine: Engine, tag: str = BASE_TAG, cache: Path = CACHE) -> str:
    """Make ``tag`` available in ``engine``: present, pulled, or imported from the local rootfs.

    Returns how it was obtained: "present", "pulled" or "imported".
    """
    if has_image(engine, tag):
        return "present"
    if os.environ.get("CEPAGE_DOCKER_TRY_PULL", "1") == "1" and can_pull(engine, tag):
        return "pulled"
    tarball = rootfs_tarball(cache)
    argv = ["docker", "import"]
    for change in IMPORT_CHANGES:
        argv += ["--change", change]
    argv += [str(tarball), tag]
    subprocess.run(argv, env=engine.env(), check=True, capture_output=True)
    return "imported"


def main(argv: list[str] | None = None) -> int:
    """Command line: start | stop | base-image."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "stop", "base-image"))
    parser.add_argument("--tag", default=BASE_TAG, help="base image tag to make (base-image)")
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
        print(f"{args.tag}: {ensure_base_image(engine, args.tag)}", file=sys.stderr)
    print(f"DOCKER_HOST={engine.host}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
