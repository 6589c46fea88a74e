"""The end of each of `make test`'s two pytest runs names the layers that did not run for a
missing tool, and `make deps`.

Each case runs a real pytest on a tiny test file with the plugin (tests/support/skips.py) loaded,
as tests/conftest.py loads it for the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.procs import ROOT

TITLE = "layers that did not run"

TESTS = """
import pytest
from tests.support.procs import require


def test_runs():
    pass


@pytest.mark.parametrize("n", [1, 2])
def test_needs_a_missing_tool(n):
    require(False, "`nosuchtool` is not installed")


@pytest.fixture(scope="module")
def engine():
    require(False, "`dockerd` is not installed (docker.io)")


def test_needs_a_fixture_that_needs_a_missing_tool(engine):
    pass


def test_needs_another_one():
    require(False, "tests/tools/x.sh failed (it needs the Go toolchain):\\nlong build log")


def test_skips_for_another_reason():
    pytest.skip("not a missing tool")
"""


def run(tmp_path: Path, source: str, *, ci: bool) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "tests" / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_demo.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT)
    if ci:
        env["CI"] = "true"
    argv = [sys.executable, "-m", "pytest", "-p", "tests.support.skips", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*argv, "-q", "tests/demo/test_demo.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def block(output: str) -> list[str]:
    """The lines the plugin printed, from its title to pytest's closing line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if TITLE in line)
    return lines[start + 1 : -1]


def test_a_laptop_run_lists_the_missing_tools_by_reason_and_layer_and_the_one_command(
    tmp_path: Path,
) -> None:
    result = run(tmp_path, TESTS, ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert block(result.stdout) == [
        "4 tests did not run because a tool they drive is missing:",
        "  `nosuchtool` is not installed: 2 tests (tests/demo)",
        "  `dockerd` is not installed (docker.io): 1 test (tests/demo)",
        "  tests/tools/x.sh failed (it needs the Go toolchain): 1 test (tests/demo)",
        "One command installs them all: `make deps` (.ci/deps, the list CI",
        "installs too); then `make test` runs every layer.",
    ]
    # The block closes the run, just above pytest's final line.
    assert result.stdout.rstrip().splitlines()[-1].startswith("1 passed, 5 skipped")


def test_with_ci_true_the_same_tests_fail_and_the_block_says_what_to_install(
    tmp_path: Path,
) -> None:
    result = run(tmp_path, TESTS, ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = block(result.stdout)
    assert lines[0] == "4 tests failed because CI=true and a tool they drive is missing:"
    assert "  `nosuchtool` is not installed: 2 tests (tests/demo)" in lines
    # A fixture's require fails the test at set-up (an error, not a failure): counted too.
    assert "  `dockerd` is not installed (docker.io): 1 test (tests/demo)" in lines
    assert any("`make deps`" in line for line in lines)
    assert "did not run because" not in result.stdout


def test_nothing_extra_when_no_tool_is_missing(tmp_path: Path) -> None:
    source = "import pytest\n\ndef test_a():\n    pass\n\ndef test_b():\n    pytest.skip('other')\n"
    result = run(tmp_path, source, ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert TITLE not in result.stdout
    assert "make deps" not in result.stdout
