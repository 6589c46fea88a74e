"""A real S3-compatible server for tests: moto's standalone server, from its own venv."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stack.processes import free_port, running
from tests.support.procs import ROOT, require


def moto_server() -> Path:
    """moto's S3 server from its own venv (tests/tools/moto.sh: its pins clash with the lock);
    skips on a laptop where it cannot be installed, fails with CI=true."""
    built = subprocess.run(
        ["bash", str(ROOT / "tests" / "tools" / "moto.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    require(
        built.returncode == 0,
        f"moto (an S3-compatible server) cannot be installed: tests/tools/moto.sh failed:\n"
        f"{built.stderr[-2000:]}",
    )
    return Path(built.stdout.strip().splitlines()[-1])


@contextmanager
def s3_server(tmp_path: Path) -> Iterator[str]:
    """A real S3-compatible server on a free port; yields its endpoint."""
    exe = moto_server()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    argv = [str(exe), "-H", "127.0.0.1", "-p", str(port)]
    with running(argv, log=tmp_path / "moto.log", ready_url=f"{endpoint}/moto-api/", timeout=60):
        yield endpoint
