"""The backup -> restore drill, for real: a real PostgreSQL holding a real MLflow store.

1. A PostgreSQL server (Debian's, /usr/lib/postgresql/N/bin; run as the `postgres` user when the
   tests run as root, since postgres refuses root) gets an `mlflow` database; MLflow's own API
   (MLFLOW_TRACKING_URI=postgresql+psycopg2://...) fills it: a run with an artifact, three
   versions of `cepage-classifier`, the aliases champion/previous/challenger, a version tag.
2. The backup role is applied (connection local, its paths in a temporary directory, no systemd:
   the timer is not started) and its script, the one the timer runs, dumps the database and copies
   the artifacts to a local directory standing for the backups bucket (rclone serves both),
   encrypted with the backup passphrase (rclone crypt): the bucket holds no dump, no artifact and
   no name in clear; a dump older than the retention is deleted.
3. The database is dropped and created empty, the artifacts deleted.
4. playbooks/restore.yml runs (its own steps; stopping/starting MLflow's container is skipped, there
   is no stack here) and the same models, versions, aliases, tags, runs and artifacts come back.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.conftest import PLAYBOOKS, Run, ansible_env, tool
from tests.support.postgres import Postgres, postgres_server
from tests.support.procs import ROOT, require_binary

pytestmark = [pytest.mark.ansible, pytest.mark.slow]

PASSWORD = "mlflow-test-password"
PASSPHRASE = "drill-backup-passphrase"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        server.psql(f"CREATE ROLE mlflow LOGIN PASSWORD '{PASSWORD}'")
        server.psql("CREATE DATABASE mlflow OWNER mlflow")
        yield server


def uri(server: Postgres) -> str:
    return server.uri("mlflow", PASSWORD, "mlflow")


def store(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    done = subprocess.run(
        [sys.executable, "-m", "tests.ansible.mlflow_store", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout


def playbook(path: Path, inventory: Path, *args: str) -> Run:
    extra = [] if os.geteuid() == 0 else ["-e", "ansible_become=false"]
    done = subprocess.run(
        [tool("ansible-playbook"), "-i", str(inventory), *extra, *args, str(path)],
        cwd=ROOT,
        env=ansible_env(ANSIBLE_ROLES_PATH=str(PLAYBOOKS / "roles")),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(done.returncode, done.stdout + done.stderr)


def inventory(base: Path, server: Postgres) -> Path:
    """The control host is this machine; the backup role's paths and targets are local."""
    host: dict[str, Any] = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "cepage_start_services": False,
        "cepage_backup_install_packages": False,
        "cepage_backup_bin_dir": str(base / "bin"),
        # Where restore.yml finds the scripts: the shared value the play gives the backup role.
        "cepage_scripts_dir": str(base / "bin"),
        "cepage_backup_etc_dir": str(base / "etc"),
        "cepage_backup_systemd_dir": str(base / "systemd"),
        "cepage_backup_owner": pwd.getpwuid(os.geteuid()).pw_name,
        "cepage_backup_group": grp.getgrgid(os.getegid()).gr_name,
        "cepage_backup_pg_mode": "local",
        "cepage_backup_pg_bindir": str(server.bindir),
        "cepage_backup_pg_host": "127.0.0.1",
        "cepage_backup_pg_port": server.port,
        "cepage_backup_pg_password": PASSWORD,
        "cepage_backup_destination": str(base / "bucket"),
        "cepage_backup_artifacts_source": str(base / "artifacts"),
        "cepage_backup_s3_endpoint": "https://s3.fr-par.scw.cloud",
        "cepage_backup_s3_region": "fr-par",
        "cepage_backup_s3_access_key": "SCWTESTTESTTESTTEST1",
        "cepage_backup_s3_secret_key": "not-used-by-a-local-destination",
        "cepage_backup_retention_days": 14,
        "cepage_backup_prune": True,
        "cepage_backup_passphrase": PASSPHRASE,
    }
    path = base / "inventory.yml"
    path.write_text(yaml.safe_dump({"control": {"hosts": {"localhost": host}}}))
    return path


def sealed(bucket: Path, *args: str, passphrase: str = PASSPHRASE) -> bytes:
    """rclone through the same crypt remote as the job (its settings, here in the environment)."""
    obscured = subprocess.run(
        ["rclone", "obscure", "-"], input=passphrase, capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {
        **os.environ,
        "RCLONE_CONFIG_SEALED_TYPE": "crypt",
        "RCLONE_CONFIG_SEALED_REMOTE": str(bucket),
        "RCLONE_CONFIG_SEALED_PASSWORD": obscured,
    }
    done = subprocess.run(["rclone", *args], env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def test_backup_then_restore_brings_the_registry_back(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_binary("rclone")
    base = tmp_path_factory.mktemp("backup-drill")
    artifacts = base / "artifacts"
    artifacts.mkdir()

    # 1. A real MLflow store in PostgreSQL.
    store("seed", uri(postgres), str(artifacts))
    before = json.loads(store("snapshot", uri(postgres)))
    model = before["models"]["cepage-classifier"]
    aliases = {k: str(v) for k, v in model["aliases"].items()}
    assert aliases == {"challenger": "3", "champion": "2", "previous": "1"}
    assert [str(v["version"]) for v in model["versions"]] == ["1", "2", "3"]
    schema_files = list(artifacts.rglob("feature_schema.json"))
    assert len(schema_files) == 1

    # 2. The backup role, then its job's script. An old dump is past the retention.
    inv = inventory(base, postgres)
    installed = playbook(ROOT / "tests" / "ansible" / "backup-role.yml", inv)
    installed.assert_ok()
    bucket = base / "bucket"
    bucket.mkdir()
    old = base / "mlflow-20200101T000000Z.dump"
    old.write_bytes(b"PGDMP old")
    stale = time.time() - 30 * 86400
    os.utime(old, (stale, stale))
    sealed(bucket, "copyto", str(old), f"sealed:postgres/{old.name}")  # keeps the old mtime
    done = subprocess.run(
        [str(base / "bin" / "cepage-backup")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    dump_name = done.stdout.strip().splitlines()[-1]
    dumps = sealed(bucket, "lsf", "--files-only", "sealed:postgres").decode().split()
    assert dumps == [dump_name], "the new dump is kept, the one past the retention deleted"
    assert sealed(bucket, "cat", f"sealed:postgres/{dump_name}")[:5] == b"PGDMP"
    relative = schema_files[0].relative_to(artifacts)
    schema_text = schema_files[0].read_text()
    assert sealed(bucket, "cat", f"sealed:mlflow-artifacts/{relative}").decode() == schema_text
    # Security item 11: what lies in the bucket is ciphertext, names included.
    stored = [p for p in bucket.rglob("*") if p.is_file()]
    assert stored
    for path in stored:
        body = path.read_bytes()
        assert not body.startswith(b"PGDMP") and schema_text.encode()[:40] not in body, path
        assert "mlflow" not in str(path.relative_to(bucket)), path
    # Another passphrase reads nothing back.
    other = sealed(bucket, "lsf", "-R", "sealed:", passphrase="not-the-passphrase")
    assert b"mlflow-" not in other

    # 3. Disaster: the database and the artifacts are gone.
    postgres.psql("DROP DATABASE mlflow WITH (FORCE)")
    postgres.psql("CREATE DATABASE mlflow OWNER mlflow")
    tables = postgres.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", "mlflow")
    assert tables == "0\n"
    shutil.rmtree(artifacts)
    artifacts.mkdir()
    # ...and someone planted a file in the artifact store after the backup.
    planted = artifacts / "planted" / "model.pkl"
    planted.parent.mkdir()
    planted.write_bytes(b"not from the backup")

    # 4. The restore playbook, then the registry is what it was.
    # With the operator's key given (a local destination ignores it): it lives in a 0600 file for
    # the run only, never on a command line.
    restored = playbook(
        PLAYBOOKS / "restore.yml", inv, "-e", "cepage_restore_dump=latest",
        "-e", "vault_cepage_scw_access_key=SCWRESTORERESTORE001",
        "-e", "vault_cepage_scw_secret_key=restore-test-secret",  # pragma: allowlist secret
        "-vvv",
    )  # fmt: skip
    restored.assert_ok()
    assert "restore-test-secret" not in restored.output  # not in argv, env or a printed result
    assert not list(Path(tempfile.gettempdir()).glob("*.restore-key"))
    assert f"restored {dump_name}" in restored.output
    after = json.loads(store("snapshot", uri(postgres)))
    assert after == before
    assert schema_files[0].read_text() == schema_text
    assert not planted.exists(), "the restore must leave the artifact store exactly as backed up"
