"""tflint with every rule of its bundled Terraform ruleset (iac/.tflint.hcl) on iac/ and its
bootstrap module; each kind of mistake it is there for is caught in a copy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.tf import IAC
from tests.support.procs import tool_or_built

pytestmark = pytest.mark.infra

CONFIG = IAC / ".tflint.hcl"


@pytest.fixture(scope="module")
def tflint() -> str:
    """tflint from PATH, else built from source into ~/.cache/cepage/bin (Go toolchain)."""
    return str(tool_or_built("tflint", "tflint.sh"))


def lint(tflint: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tflint, f"--config={CONFIG}", "--format=compact", "--no-color"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("module", ["", "bootstrap"], ids=["iac", "bootstrap"])
def test_tflint_is_clean(tflint: str, module: str) -> None:
    done = lint(tflint, IAC / module)
    assert done.returncode == 0, done.stdout + done.stderr


MISTAKES = {
    "untyped variable": ('variable "x" {\n  description = "x"\n}\n', "terraform_typed_variables"),
    "undocumented output": ('output "x" {\n  value = 1\n}\n', "terraform_documented_outputs"),
    "unused variable": (
        'variable "x" {\n  description = "x"\n  type = string\n}\n',
        "terraform_unused_declarations",
    ),
    "camelCase name": (
        "locals {\n  badName = 1\n}\n"
        'output "y" {\n  description = "y"\n  value = local.badName\n}\n',
        "terraform_naming_convention",
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES, ids=list(MISTAKES))
def test_tflint_catches(tflint: str, mistake: str, tmp_path: Path) -> None:
    copy = tmp_path / "iac"
    shutil.copytree(
        IAC / "bootstrap", copy, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*")
    )
    text, rule = MISTAKES[mistake]
    (copy / "mistake.tf").write_text(text)
    done = lint(tflint, copy)
    assert done.returncode != 0 and rule in done.stdout, done.stdout + done.stderr
