"""terraform-compliance on the real plans: the features pass on dev and prod, and each scenario
fails on a plan of a deliberately bad configuration (a Terraform override file in a copy)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.infra.tf import CACHE, SCRIPTS, Workdir
from tests.support.procs import ROOT, require

pytestmark = [pytest.mark.infra, pytest.mark.timeout(3600)]

FEATURES = ROOT / "tests" / "infra" / "compliance"
SUMMARY = re.compile(r"^(\d+) scenarios \(([^)]*)\)", re.M)


@pytest.fixture(scope="session")
def compliance() -> Path:
    """terraform-compliance, in its own venv under the cache (scripts/iac-tools.sh)."""
    exe = CACHE / "venvs" / "terraform-compliance" / "bin" / "terraform-compliance"
    if not exe.exists():
        subprocess.run(["bash", str(SCRIPTS / "iac-tools.sh")], capture_output=True, check=False)
    require(exe.exists(), "terraform-compliance is not installed: run scripts/iac-tools.sh")
    return exe


@dataclass
class Report:
    rc: int
    output: str
    failed: set[str] = field(default_factory=set)

    @property
    def summary(self) -> str:
        match = SUMMARY.search(self.output)
        assert match, self.output[-3000:]
        return match.group(0)


def run_features(exe: Path, plan_json: Path, *dirs: str) -> Report:
    """Run the feature folders on one plan; report the names of the failed scenarios."""
    output, rc = "", 0
    for folder in dirs:
        done = subprocess.run(
            [str(exe), "--no-ansi", "-p", str(plan_json), "-f", str(FEATURES / folder)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        output += done.stdout + done.stderr
        rc = rc or done.returncode
    report = Report(rc, output)
    scenario = None
    for line in output.splitlines():
        if m := re.match(r"\s+Scenario(?: Outline)?: (.+)$", line):
            scenario = m.group(1).strip()
        elif "Failure:" in line and scenario:
            report.failed.add(scenario)
    assert "Looks like a syntax error" not in output and "ERROR:" not in output, output[-3000:]
    return report


def scenarios(folder: str) -> dict[str, bool]:
    """Scenario name -> whether it is a filter-then-fail scenario (ends with `Then it fails`)."""
    found: dict[str, bool] = {}
    for feature in (FEATURES / folder).glob("*.feature"):
        for block in re.split(r"^\s*(?:@\w+\s*)?(?=Scenario: )", feature.read_text(), flags=re.M)[
            1:
        ]:
            name = block.splitlines()[0].removeprefix("Scenario: ").strip()
            found[name] = bool(re.search(r"^\s*Then it fails\s*$", block, re.M))
    return found


def scenario_names(folder: str) -> set[str]:
    return set(scenarios(folder))


@pytest.mark.parametrize(("env", "folders"), [("dev", ("all",)), ("prod", ("all", "prod"))])
def test_features_pass(
    env: str, folders: tuple[str, ...], compliance: Path, iac: Workdir, plans: dict[str, Any]
) -> None:
    report = run_features(compliance, iac.path / f"{env}.plan.json", *folders)
    assert report.rc == 0 and not report.failed, report.output[-5000:]
    # Every scenario ran: the checks passed, and the filter-then-fail ones ("Then it fails")
    # found no offending resource and were skipped. None passed vacuously for lack of resources.
    counts = {"passed": 0, "skipped": 0, "failed": 0}
    for folder in folders:
        for filters in scenarios(folder).values():
            counts["skipped" if filters else "passed"] += 1
    found = {"passed": 0, "skipped": 0, "failed": 0}
    for match in SUMMARY.finditer(report.output):
        for n, state in re.findall(r"(\d+) (passed|skipped|failed)", match.group(2)):
            found[state] += int(n)
    assert found == counts, report.output[-3000:]


SG_EDGE = 'resource "scaleway_instance_security_group" "edge" {{\n{}\n}}\n'
RULE = '  inbound_rule {{\n    action = "accept"\n{}\n  }}'


def rule(*lines: str) -> str:
    return RULE.format("\n".join(f"    {line}" for line in lines))


HOSTS_SETS = ["ContainerRegistryReadOnly", "ObjectStorageObjectsRead", "ObjectStorageObjectsWrite"]
BACKUP_SETS = ["ObjectStorageObjectsRead", "ObjectStorageObjectsWrite"]
RETRAIN_SETS = ["ObjectStorageObjectsRead"]


def iam_roles(
    hosts: list[str] = HOSTS_SETS,
    backup: list[str] = BACKUP_SETS,
    retrain: list[str] = RETRAIN_SETS,
) -> str:
    """An override of iac/iam.tf's roles with other permission sets."""
    roles = {"hosts": hosts, "backup": backup, "retrain": retrain}
    body = "".join(
        f'    {role} = {{\n      description = "x"\n'
        f"      permission_sets = {json.dumps(sets)}\n    }}\n"
        for role, sets in roles.items()
    )
    return f"locals {{\n  iam_roles = {{\n{body}  }}\n}}\n"


@dataclass
class Bad:
    """A deliberately bad configuration and the scenarios it must fail."""

    override: str
    fails: set[str]
    env: str = "dev"
    variables: dict[str, str] = field(default_factory=dict)
    # An override file changes existing blocks; new blocks go in an ordinary file.
    file: str = "zz_bad_override.tf"


BAD: dict[str, Bad] = {
    "inbound-accept-by-default": Bad(
        SG_EDGE.format('  inbound_default_policy = "accept"'),
        {"Inbound traffic is dropped by default"},
    ),
    "ssh-open-to-the-world": Bad(
        SG_EDGE.format(rule('protocol = "TCP"', "port = 22", 'ip_range = "0.0.0.0/0"')),
        {
            "SSH is never open to the world",
            "Rules open to the world accept only HTTP and HTTPS, one port each",
        },
    ),
    "ssh-open-to-the-ipv6-world": Bad(
        SG_EDGE.format(rule('protocol = "TCP"', "port = 22", 'ip_range = "::/0"')),
        {
            "SSH is never open to the world",
            "Rules open to the world accept only HTTP and HTTPS, one port each",
        },
    ),
    "all-ports-open-to-the-world": Bad(
        SG_EDGE.format(rule('protocol = "TCP"', 'ip_range = "0.0.0.0/0"')),
        {"Rules open to the world accept only HTTP and HTTPS, one port each"},
    ),
    "port-range-open-to-the-world": Bad(
        SG_EDGE.format(rule('protocol = "TCP"', 'port_range = "20-25"', 'ip_range = "0.0.0.0/0"')),
        {"Rules open to the world accept only HTTP and HTTPS, one port each"},
    ),
    "rule-without-source-range": Bad(
        SG_EDGE.format(rule('protocol = "TCP"', "port = 22")),
        {"Every inbound rule names the source range it accepts"},
    ),
    "public-bucket-acl": Bad(
        'resource "scaleway_object_bucket_acl" "backups" {\n  acl = "public-read"\n}\n',
        {"Every bucket has a private ACL"},
    ),
    "public-inline-bucket-acl": Bad(
        'resource "scaleway_object_bucket" "mlflow_artifacts" {\n  acl = "public-read"\n}\n',
        {"The buckets' own ACL attribute stays private"},
    ),
    "public-registry": Bad(
        'resource "scaleway_registry_namespace" "main" {\n  is_public = true\n}\n',
        {"The registry namespace is private"},
    ),
    "backups-not-versioned": Bad(
        'resource "scaleway_object_bucket" "backups" {\n'
        "  versioning {\n    enabled = false\n  }\n}\n",
        {"The backups bucket is versioned"},
    ),
    "backups-never-expire": Bad(
        'resource "scaleway_object_bucket" "backups" {\n  lifecycle_rule {\n    id = "abort"\n'
        "    enabled = true\n    abort_incomplete_multipart_upload_days = 7\n  }\n}\n",
        {"The backups bucket expires old objects", "The backups bucket expires old versions"},
    ),
    "resource-without-environment-tag": Bad(
        'resource "scaleway_block_volume" "data" {\n  tags = ["project=cepage"]\n}\n',
        {"Every taggable resource names its environment"},
    ),
    "resource-without-project-tag": Bad(
        'resource "scaleway_vpc" "main" {\n  tags = ["environment=dev"]\n}\n',
        {"Every taggable resource names its project"},
    ),
    "untagged-secret": Bad(
        'resource "scaleway_secret" "generated" {\n  tags = []\n}\n',
        {
            "Every taggable resource names its project",
            "Every taggable resource names its environment",
        },
    ),
    "bucket-without-environment-tag": Bad(
        'resource "scaleway_object_bucket" "backups" {\n  tags = { project = "cepage" }\n}\n',
        {"Every bucket names its environment"},
    ),
    "bucket-without-project-tag": Bad(
        'resource "scaleway_object_bucket" "backups" {\n  tags = { environment = "dev" }\n}\n',
        {"Every bucket names its project"},
    ),
    "sensitive-variable": Bad(
        'variable "db_password" {\n  type      = string\n  sensitive = true\n'
        '  default   = "correct-horse-battery"\n  description = "x"\n}\n',
        {"No variable is a secret input"},
        file="zz_bad.tf",
    ),
    "credential-default": Bad(
        'variable "scw_secret_key" {\n  type    = string\n'
        '  default = "0b5e7a9c-1d2f-4a6b-8c3d-9e0f1a2b3c4d"\n  description = "x"\n}\n',
        {"No default looks like a credential"},
        file="zz_bad.tf",
    ),
    "access-key-default": Bad(
        'variable "scw_access_key" {\n  type    = string\n'
        '  default = "SCWABCDEFGHIJKLMNOPQ"\n  description = "x"\n}\n',
        {"No default looks like a credential"},
        file="zz_bad.tf",
    ),
    "hosts-with-full-object-storage": Bad(
        iam_roles(hosts=["ContainerRegistryReadOnly", "ObjectStorageFullAccess"]),
        {
            "The hosts application only pulls images and reads and writes objects",
            "No IAM policy of an environment grants full access, deletion, secrets or IAM",
        },
    ),
    "hosts-reading-secrets": Bad(
        iam_roles(hosts=[*HOSTS_SETS, "SecretManagerSecretAccess"]),
        {
            "The hosts application only pulls images and reads and writes objects",
            "No IAM policy of an environment grants full access, deletion, secrets or IAM",
        },
    ),
    "backup-can-delete": Bad(
        iam_roles(backup=[*BACKUP_SETS, "ObjectStorageObjectsDelete"]),
        {
            "The backup application only reads and writes objects, never deletes",
            "No IAM policy of an environment grants full access, deletion, secrets or IAM",
        },
    ),
    "backup-pulls-images": Bad(
        iam_roles(backup=[*BACKUP_SETS, "ContainerRegistryReadOnly"]),
        {"The backup application only reads and writes objects, never deletes"},
    ),
    "retrain-can-write": Bad(
        iam_roles(retrain=[*RETRAIN_SETS, "ObjectStorageObjectsWrite"]),
        {"The retrain application only reads objects (the production log)"},
    ),
    "production-log-never-expires": Bad(
        'resource "scaleway_object_bucket" "production_log" {\n  lifecycle_rule {\n'
        '    id = "abort"\n    enabled = true\n    abort_incomplete_multipart_upload_days = 7\n'
        "  }\n}\n",
        {"The production log expires (predictions and labels are not kept for ever)"},
    ),
    "prod-on-one-instance": Bad(
        "",
        {
            "At least two service instances",
            "A load balancer exists",
            "The load balancer checks /readyz over HTTP",
            "The load balancer reaches the instances over the private network",
        },
        env="prod",
        variables={"service_instance_count": "1"},
    ),
    "prod-health-check-elsewhere": Bad(
        "",
        {"The load balancer checks /readyz over HTTP"},
        env="prod",
        variables={"health_check_path": "/"},
    ),
    "prod-tcp-health-check": Bad(
        'resource "scaleway_lb_backend" "service" {\n  dynamic "health_check_http" {\n'
        "    for_each = []\n    content {\n      uri = health_check_http.value\n    }\n  }\n"
        "  health_check_tcp {}\n}\n",
        {"The load balancer checks /readyz over HTTP"},
        env="prod",
    ),
    "prod-lb-off-the-private-network": Bad(
        'resource "scaleway_lb" "main" {\n  dynamic "private_network" {\n    for_each = []\n'
        "    content {\n      private_network_id = private_network.value\n    }\n  }\n}\n",
        {"The load balancer reaches the instances over the private network"},
        env="prod",
    ),
}


def test_every_scenario_is_proven_to_fail() -> None:
    """No scenario goes untested: each one is failed by at least one bad configuration."""
    proven = set().union(*(bad.fails for bad in BAD.values()))
    assert scenario_names("all") | scenario_names("prod") == proven


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_configuration_fails(
    case: str, compliance: Path, clone: Callable[..., Workdir]
) -> None:
    bad = BAD[case]
    workdir = clone({bad.file: bad.override} if bad.override else {})
    result, plan = workdir.plan([f"envs/{bad.env}.tfvars"], bad.variables, name="bad")
    assert plan is not None, f"the bad configuration must still plan:\n{result.text}"
    folders = ("all", "prod") if bad.env == "prod" else ("all",)
    report = run_features(compliance, workdir.path / "bad.plan.json", *folders)
    assert report.rc != 0, report.output[-3000:]
    assert report.failed == bad.fails, report.output[-5000:]
