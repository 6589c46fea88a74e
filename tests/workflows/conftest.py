"""Fixtures of the workflow tests: actionlint (built offline by tests/tools/actionlint.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.procs import tool_or_built


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "workflows: GitHub Actions workflows (actionlint, rules), yamllint, smoke.py"
    )


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """actionlint from PATH, else built from source into ~/.cache/cepage/bin (Go toolchain)."""
    return tool_or_built("actionlint", "actionlint.sh")
