"""checkov with custom Scaleway policies (tests/infra/checkov/) on the HCL of iac/, bootstrap too.

checkov reads the source, so it sees what no plan shows: the bootstrap's state bucket, the HTTPS
frontend that exists only with a domain, the provider block, and per-resource links (every bucket
has its ACL resource, every instance names its security group) that terraform-compliance's
reference steps cannot check resource by resource. Each policy is proven to fail on a copy of
iac/ with one deliberate mistake.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.tf import CACHE, IAC, SCRIPTS
from tests.support.procs import ROOT, require

pytestmark = [pytest.mark.infra, pytest.mark.timeout(1800)]

POLICIES = ROOT / "tests" / "infra" / "checkov"


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov, in its own venv under the cache (scripts/iac-tools.sh)."""
    exe = CACHE / "venvs" / "checkov" / "bin" / "checkov"
    if not exe.exists():
        subprocess.run(["bash", str(SCRIPTS / "iac-tools.sh")], capture_output=True, check=False)
    require(exe.exists(), "checkov is not installed: run scripts/iac-tools.sh")
    return exe


def policy_ids() -> set[str]:
    return {
        m.group(1)
        for f in POLICIES.glob("*.yaml")
        if (m := re.search(r'^\s+id:\s*"([^"]+)"', f.read_text(), re.M))
    }


def scan(exe: Path, directory: Path) -> tuple[int, dict[str, set[str]]]:
    """Run our policies only; return the exit code and check id -> passed/failed resources."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    done = subprocess.run(
        [
            str(exe),
            "-d",
            str(directory),
            "--framework",
            "terraform",
            "--external-checks-dir",
            str(POLICIES),
            "--check",
            ",".join(sorted(policy_ids())),
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    data: Any = json.loads(done.stdout)
    report = data[0] if isinstance(data, list) else data
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    results: dict[str, set[str]] = {"passed": set(), "failed": set()}
    for state in ("passed", "failed"):
        for check in report.get("results", {}).get(f"{state}_checks", []):
            results[state].add(check["check_id"])
    return done.returncode, results


def test_policies_pass_and_all_apply(checkov: Path) -> None:
    rc, results = scan(checkov, IAC)
    assert rc == 0 and not results["failed"], results
    # Every policy matched at least one resource: none passes for lack of a target.
    assert results["passed"] == policy_ids()


# file in iac/, text to replace (must occur exactly once), replacement, policy that must fail
MISTAKES: dict[str, tuple[str, str, str, str]] = {
    "credentials-in-provider": (
        "versions.tf",
        'provider "scaleway" {\n',
        'provider "scaleway" {\n  access_key = "SCWXXXXXXXXXXXXXXXXX"\n',
        "CKV_CEPAGE_1",
    ),
    "public-state-bucket": (
        "bootstrap/main.tf",
        'acl    = "private"',
        'acl    = "public-read"',
        "CKV_CEPAGE_2",
    ),
    "public-artifacts-bucket": (
        "storage.tf",
        'bucket = scaleway_object_bucket.mlflow_artifacts.id\n  acl    = "private"',
        'bucket = scaleway_object_bucket.mlflow_artifacts.id\n  acl    = "public-read-write"',
        "CKV_CEPAGE_2",
    ),
    "state-bucket-not-versioned": (
        "bootstrap/main.tf",
        "versioning {\n    enabled = true",
        "versioning {\n    enabled = false",
        "CKV_CEPAGE_3",
    ),
    "state-bucket-destroyable": (
        "bootstrap/main.tf",
        "prevent_destroy = true",
        "prevent_destroy = false",
        "CKV_CEPAGE_3",
    ),
    "https-without-certificate": (
        "lb.tf",
        "  certificate_ids = [scaleway_lb_certificate.main[0].id]\n",
        "",
        "CKV_CEPAGE_4",
    ),
    "database-not-encrypted": (
        "database.tf",
        "encryption_at_rest = true",
        "encryption_at_rest = false",
        "CKV_CEPAGE_5",
    ),
    "database-without-backups": (
        "database.tf",
        "disable_backup            = false",
        "disable_backup            = true",
        "CKV_CEPAGE_5",
    ),
    "database-public-endpoint": (
        "database.tf",
        "  private_network {\n",
        "  load_balancer {}\n\n  private_network {\n",
        "CKV_CEPAGE_5",
    ),
    "instance-without-security-group": (
        "compute.tf",
        "  security_group_id = ",
        "  # security_group_id = ",
        "CKV_CEPAGE_6",
    ),
    "bucket-without-acl-resource": (
        "storage.tf",
        'resource "scaleway_object_bucket_acl" "backups" {\n'
        "  bucket = scaleway_object_bucket.backups.id\n"
        '  acl    = "private"\n}\n',
        "",
        "CKV_CEPAGE_7",
    ),
}


def test_every_policy_is_proven_to_fail() -> None:
    assert {m[3] for m in MISTAKES.values()} == policy_ids()


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_mistake_is_caught(case: str, checkov: Path, tmp_path: Path) -> None:
    rel, old, new, policy = MISTAKES[case]
    copy = tmp_path / "iac"
    shutil.copytree(IAC, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    target = copy / rel
    text = target.read_text()
    assert text.count(old) == 1, f"{rel} changed: update this mistake"
    target.write_text(text.replace(old, new))
    rc, results = scan(checkov, copy)
    assert rc != 0
    assert results["failed"] == {policy}, results
