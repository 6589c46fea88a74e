"""Where the CI files live: the helpers the workflows and Make targets call are in scripts/, the
offline stand-ins (for tools a machine reaching only the package registries lacks) in tests/tools/,
an importable package that runs as modules and as files, and the user's path never calls them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import ROOT

pytestmark = pytest.mark.workflows

TOOLS = ROOT / "tests" / "tools"


def python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_docker_engine_runs_as_a_module_and_as_a_file(tmp_path: Path) -> None:
    as_module = python("-m", "tests.tools.docker_engine", "--help")
    assert as_module.returncode == 0, as_module.stderr
    assert "{start,stop,base-image}" in as_module.stdout
    # From another folder, as a file: it finds the `tests.tools` package it imports by itself.
    as_file = python(str(TOOLS / "docker_engine.py"), "--help", cwd=tmp_path)
    assert as_file.returncode == 0, as_file.stderr
    assert as_file.stdout == as_module.stdout


def test_the_terraform_stand_in_is_the_real_terraform(tmp_path: Path) -> None:
    done = python(str(TOOLS / "terraform.py"), "version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.match(r"Terraform v1\.\d+\.\d+", done.stdout), done.stdout


def test_the_user_path_never_calls_an_offline_stand_in() -> None:
    """scripts/ (what the workflows and Make targets run) stays usable without tests/; the
    Makefile reaches a stand-in only as the fallback after the tool itself (`command -v ... ||`)."""
    for script in sorted(p for p in (ROOT / "scripts").rglob("*") if p.is_file()):
        assert "tests/tools" not in script.read_text(errors="replace"), script
    fallbacks = re.findall(r"^\t.*tests/tools/.*$", (ROOT / "Makefile").read_text(), re.M)
    assert fallbacks, "no stand-in named in the Makefile: this check looks at nothing"
    for line in fallbacks:
        assert re.search(r"command -v [\w-]+ \|\| bash tests/tools/[\w-]+\.sh", line), line
