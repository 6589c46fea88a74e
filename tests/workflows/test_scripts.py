"""The CI helper scripts the workflows call: the image list against the compose file, the plan
report's failure path. (The registry queries are `cepage registry`, tested with the CLI.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.procs import ROOT, require

pytestmark = pytest.mark.workflows

SCRIPTS = ROOT / "scripts"


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


def test_every_list_of_the_images_agrees_with_compose() -> None:
    # One home, compose/docker-compose.yml; the SBOM matrix and Dependabot must follow it, and a
    # page that counts the images must count them all.
    names = subprocess.run(
        ["bash", str(SCRIPTS / "images.sh"), "names"], capture_output=True, text=True, check=True
    ).stdout.split()
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert sorted(release["jobs"]["sbom"]["strategy"]["matrix"]["image"]) == sorted(names)

    dockerfiles = set()
    for name in names:
        build = compose["services"][name]["build"]
        context = (ROOT / "compose" / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), dockerfile
        dockerfiles.add("/" + dockerfile.parent.relative_to(ROOT).as_posix())
    dependabot = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    docker = [u for u in dependabot["updates"] if u["package-ecosystem"] == "docker"]
    assert {d for u in docker for d in u.get("directories", [u.get("directory")])} == dockerfiles

    words = {"four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
    pages = [ROOT / "docs" / "ci-cd.md", ROOT / "Makefile", ROOT / ".github/workflows/release.yml"]
    for page in pages:
        text = page.read_text()
        for count in re.findall(r"\b(\d+|four|five|six|seven|eight) images\b", text):
            assert words.get(count, count) in (len(names), str(len(names))), (page, count)
        for line in (line for line in text.splitlines() if "images.sh names" in line):
            named = [n for n in names if re.search(rf"\b{n}\b", line, re.IGNORECASE)]
            assert len(named) in (0, len(names)), (page, line)


def test_images_script_refuses_bad_usage() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPTS / "images.sh"), "push", "only-a-prefix"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "usage: images.sh push PREFIX TAG" in done.stderr


def test_plan_report_writes_a_failed_report_and_exits_1(tmp_path: Path) -> None:
    # The committed backend files still say CHANGE-ME: infra.sh refuses before any API call.
    backend = (ROOT / "iac" / "envs" / "dev.backend.hcl").read_text()
    # A clean clone (CI's) always has the placeholder; an operator's configured checkout skips.
    require(
        "CHANGE-ME" in backend, "iac/envs/dev.backend.hcl is configured: this needs the placeholder"
    )
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
