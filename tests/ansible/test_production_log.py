"""The production log's sync, for real: the role applied locally (its paths in a temporary
directory, no systemd: the timer is not started), then its script, the one the timer runs every
5 minutes, moves the service's finished Parquet files to a local directory standing for the bucket
(rclone serves both): whole files a minute old only, their Hive partition paths kept, the writer's
hidden temporary files and the files still being written left where they are, and partition
folders emptied a day ago removed. A second apply changes nothing."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.conftest import PLAYBOOKS, Run, ansible_env, tool
from tests.support.procs import ROOT, require_binary

pytestmark = pytest.mark.ansible

ROLE_PLAYBOOK = ROOT / "tests" / "ansible" / "production-log-role.yml"


def inventory(base: Path) -> Path:
    host: dict[str, Any] = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "cepage_start_services": False,
        "cepage_production_log_install_packages": False,
        "cepage_production_log_enabled": True,
        "cepage_production_log_dir": str(base / "production"),
        "cepage_production_log_owner": pwd.getpwuid(os.geteuid()).pw_name,
        "cepage_production_log_root_owner": pwd.getpwuid(os.geteuid()).pw_name,
        "cepage_production_log_root_group": grp.getgrgid(os.getegid()).gr_name,
        "cepage_production_log_bin_dir": str(base / "bin"),
        "cepage_production_log_etc_dir": str(base / "etc"),
        "cepage_production_log_systemd_dir": str(base / "systemd"),
        "cepage_production_log_destination": str(base / "bucket" / "production"),
        "cepage_production_log_s3_endpoint": "https://s3.fr-par.scw.cloud",
        "cepage_production_log_s3_region": "fr-par",
        "cepage_production_log_s3_access_key": "SCWTESTTESTTESTTEST1",
        "cepage_production_log_s3_secret_key": "unused-locally",  # pragma: allowlist secret
    }
    path = base / "inventory.yml"
    path.write_text(yaml.safe_dump({"service": {"hosts": {"localhost": host}}}))
    return path


def apply(inventory_path: Path) -> Run:
    extra = [] if os.geteuid() == 0 else ["-e", "ansible_become=false"]
    done = subprocess.run(
        [tool("ansible-playbook"), "-i", str(inventory_path), *extra, str(ROLE_PLAYBOOK)],
        cwd=ROOT, env=ansible_env(ANSIBLE_ROLES_PATH=str(PLAYBOOKS / "roles")),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return Run(done.returncode, done.stdout + done.stderr)


def write(path: Path, age_seconds: float, body: bytes = b"PAR1 not really parquet PAR1") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def test_the_timer_moves_finished_files_to_the_bucket_keeping_their_partitions(
    tmp_path: Path,
) -> None:
    require_binary("rclone")
    inv = inventory(tmp_path)
    first = apply(inv)
    first.assert_ok()
    root = tmp_path / "production"
    assert root.is_dir() and oct(root.stat().st_mode & 0o777) == "0o750"
    timer = (tmp_path / "systemd" / "cepage-production-log.timer").read_text()
    assert "OnCalendar=*:0/5" in timer and "WantedBy=timers.target" in timer
    unit = (tmp_path / "systemd" / "cepage-production-log.service").read_text()
    assert f"ExecStart={tmp_path}/bin/cepage-production-log" in unit
    settings = tmp_path / "etc" / "production-log.env"
    assert oct(settings.stat().st_mode & 0o777) == "0o600"
    assert "RCLONE_CONFIG_PRODUCTION_NO_CHECK_BUCKET=true" in settings.read_text()

    # What the service leaves: whole files (one a minute old or more, one just written), the
    # hidden temporary file of a write in progress, an old partition folder already emptied.
    day = "predictions/date=2026-11-30/model_version=3"
    done_prediction = write(root / day / "part-7-20261130T101500000Z-aa.parquet", 600)
    done_feedback = write(
        root / "feedback/date=2026-11-30/part-7-20261130T101501000Z-bb.parquet", 90
    )
    fresh = write(root / day / "part-7-20261130T102000000Z-cc.parquet", 5)
    in_progress = write(root / day / ".part-8-20261130T101000000Z-dd.parquet.tmp", 900)
    emptied = root / "predictions/date=2026-10-01/model_version=2"
    emptied.mkdir(parents=True)
    old = time.time() - 2 * 86400
    os.utime(emptied, (old, old))

    done = subprocess.run(
        [str(tmp_path / "bin" / "cepage-production-log")],
        env={**os.environ, "CEPAGE_PRODUCTION_LOG_ENV": str(settings)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    bucket = tmp_path / "bucket" / "production"
    moved = sorted(str(p.relative_to(bucket)) for p in bucket.rglob("*") if p.is_file())
    assert moved == sorted(str(p.relative_to(root)) for p in (done_prediction, done_feedback)), (
        "whole files a minute old, under the same partition paths"
    )
    assert not done_prediction.exists() and not done_feedback.exists(), "moved, not copied"
    assert fresh.exists() and in_progress.exists(), "a file being written is never moved"
    assert not emptied.exists(), "a partition folder emptied long ago is removed"
    assert (root / day).is_dir(), "today's folders stay"

    second = apply(inv)
    second.assert_ok()
    assert second.recap()["localhost"]["changed"] == 0, "\n".join(second.changed_tasks())
