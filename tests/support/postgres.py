"""A real PostgreSQL server (Debian's package) for the tests that need MLflow on PostgreSQL.

postgres refuses to run as root: when the tests run as root (CI), the server runs as the
`postgres` system user the package creates. A missing server skips on a laptop and fails with
CI=true (``require``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import free_port, require


def pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@dataclass(frozen=True)
class Postgres:
    """A running server; ``psql`` runs SQL as its superuser ``admin`` over 127.0.0.1."""

    bindir: Path
    port: int
    base: Path

    def uri(self, user: str, password: str, database: str, host: str = "127.0.0.1") -> str:
        return f"postgresql+psycopg2://{user}:{password}@{host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "admin",
             "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout


def as_postgres_user(argv: list[str]) -> list[str]:
    """postgres refuses to run as root: when root, run it as the `postgres` system user."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    require(runuser is not None, "`runuser` is missing (util-linux)")
    return [str(runuser), "-u", "postgres", "--", *argv]


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def postgres_server(listen: str = "127.0.0.1") -> Iterator[Postgres]:
    """A fresh cluster on a free port. Local connections are trusted; with ``listen`` other than
    127.0.0.1 (e.g. for containers), remote ones must give a password (scram-sha-256)."""
    bindir = pg_bindir()
    require(bindir is not None, "PostgreSQL's server is not installed (apt-get install postgresql)")
    assert bindir is not None
    base = Path(tempfile.mkdtemp(prefix="cepage-pg-"))
    data, sockets = base / "data", base / "run"
    data.mkdir()
    sockets.mkdir()
    if os.geteuid() == 0:
        require(_has_user("postgres"), "no `postgres` user to run the server as (root refused)")
        uid, gid = pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid
        base.chmod(0o755)
        for path in (data, sockets):
            os.chown(path, uid, gid)
    done = subprocess.run(
        as_postgres_user([str(bindir / "initdb"), "-D", str(data), "-U", "admin",
                          "--auth-local=trust", "--auth-host=trust", "-E", "UTF8", "--no-sync"]),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    if listen != "127.0.0.1":
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 scram-sha-256\n")
    port = free_port()
    log = base / "postgres.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            as_postgres_user([str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                              "-h", listen, "-k", str(sockets), "-c", "fsync=off"]),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Postgres(bindir=bindir, port=port, base=base)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True, check=False,
        ).returncode != 0:  # fmt: skip
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # fast shutdown
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)
