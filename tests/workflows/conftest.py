"""Fixtures of the workflow tests: actionlint (built offline by scripts/ci/actionlint.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.procs import ROOT, require


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "workflows: GitHub Actions workflows (actionlint, rules), yamllint, smoke.py"
    )


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """actionlint from PATH, else built from source into ~/.cache/cepage/bin (Go toolchain)."""
    found = shutil.which("actionlint")
    if found:
        return Path(found)
    try:
        built = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ci" / "actionlint.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except FileNotFoundError as exc:  # no bash
        built = subprocess.CompletedProcess([], 127, "", str(exc))
    require(
        built.returncode == 0,
        f"actionlint is not installed and scripts/ci/actionlint.sh could not build it "
        f"(needs the Go toolchain):\n{built.stderr[-2000:]}",
    )
    return Path(built.stdout.strip().splitlines()[-1])
