"""Offline stand-in: ``python:3.11-slim`` made locally when no registry can be reached.

Inside a given (private) engine only: ``debootstrap bookworm`` with python3/pip/venv (Debian
bookworm's python3 is 3.11), the host's CA bundle baked in (so pip reaches PyPI over HTTPS from
inside a build), imported with ``docker import`` and tagged with the upstream name, so every
``FROM`` (BentoML's generated Dockerfile included) works unchanged. The rootfs tarball is cached.
Where the image can be pulled, it is pulled instead. Standard library only; the command line is
``python3 -m tests.tools.docker_engine base-image``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

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


def _docker(
    env: Mapping[str, str], *args: str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], env=dict(env), capture_output=True, text=True, check=False,
        timeout=timeout,
    )  # fmt: skip


def has_image(env: Mapping[str, str], tag: str) -> bool:
    """Whether ``tag`` is in the image store of the engine ``env`` points at."""
    return _docker(env, "image", "inspect", tag).returncode == 0


def can_pull(env: Mapping[str, str], tag: str) -> bool:
    """Try the normal path first: pull ``tag`` from its registry (fails fast offline)."""
    return _docker(env, "pull", "-q", tag, timeout=120).returncode == 0


def rootfs_tarball(cache: Path) -> Path:
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


def ensure_base_image(env: Mapping[str, str], cache: Path, tag: str = BASE_TAG) -> str:
    """Make ``tag`` available in the engine ``env`` points at (``DOCKER_HOST``): present, pulled,
    or imported from the rootfs cached in ``cache``.

    Returns how it was obtained: "present", "pulled" or "imported".
    """
    if has_image(env, tag):
        return "present"
    if os.environ.get("CEPAGE_DOCKER_TRY_PULL", "1") == "1" and can_pull(env, tag):
        return "pulled"
    tarball = rootfs_tarball(cache)
    argv = ["docker", "import"]
    for change in IMPORT_CHANGES:
        argv += ["--change", change]
    argv += [str(tarball), tag]
    subprocess.run(argv, env=dict(env), check=True, capture_output=True)
    return "imported"
