"""The CI helper scripts the workflows call: the registry queries against a real MLflow store,
the image list against the compose file, the plan report's failure path."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.procs import ROOT, stack_env

pytestmark = pytest.mark.workflows

SCRIPTS = ROOT / "scripts" / "ci"


def test_images_are_the_compose_services_that_are_built() -> None:
    names = subprocess.run(
        ["bash", str(SCRIPTS / "images.sh"), "names"], capture_output=True, text=True, check=True
    ).stdout.split()
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    built = {name for name, service in compose["services"].items() if "build" in service}
    assert set(names) == built
    for name in names:
        image = compose["services"][name]["image"]
        assert image == f"${{CEPAGE_IMAGE_PREFIX:-cepage}}/{name}:${{CEPAGE_IMAGE_TAG:-dev}}"


def test_images_script_refuses_bad_usage() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPTS / "images.sh"), "push", "only-a-prefix"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "usage: images.sh push PREFIX TAG" in done.stderr


@pytest.mark.integration
def test_model_registry_reads_the_champion_and_the_gate(trained_home: Path) -> None:
    env = stack_env(trained_home)

    def registry(what: str) -> str:
        done = subprocess.run(
            [sys.executable, str(SCRIPTS / "model_registry.py"), what],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    # One process (MLflow's import takes seconds): the summary reads the champion as `champion`.
    summary = registry("gate-summary")
    serving = re.search(r"`cepage-classifier@champion` = version (\d+)\.", summary)
    assert serving, summary
    version = serving.group(1)
    assert f"### Retrain: version {version} of `cepage-classifier` promoted" in summary
    assert "| candidate (version" in summary and "Gate: " in summary


@pytest.mark.integration
def test_model_registry_says_when_there_is_no_model(trained_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "model_registry.py"), "champion"],
        env=stack_env(trained_home, CEPAGE_MODEL_NAME="no-such-model"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]  # after MLflow's own log lines
    assert last.startswith("model_registry: no no-such-model@champion in the registry")


def test_plan_report_writes_a_failed_report_and_exits_1(tmp_path: Path) -> None:
    # The committed backend files still say CHANGE-ME: infra.sh refuses before any API call.
    backend = (ROOT / "iac" / "envs" / "dev.backend.hcl").read_text()
    if "CHANGE-ME" not in backend:
        pytest.skip("iac/envs/dev.backend.hcl is configured: this test needs the placeholder")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TERRAFORM": "true",
        "SCW_ACCESS_KEY": "SCWXXXXXXXXXXXXXXXXX",
        "SCW_SECRET_KEY": "00000000-0000-0000-0000-000000000000",
        "SCW_DEFAULT_PROJECT_ID": "00000000-0000-0000-0000-000000000000",
    }
    done = subprocess.run(
        ["bash", str(SCRIPTS / "plan-report.sh"), "dev", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = (tmp_path / "dev.md").read_text()
    assert report.startswith("<!-- cepage-plan:dev -->\n#### Terraform `dev`: **FAILED**")
    assert "CHANGE-ME" in report and "compliance: not run (no plan)" in report
