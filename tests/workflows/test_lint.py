"""Linters on the CI/CD files: actionlint (with shellcheck on every `run:` script), the vendored
GitHub workflow, action and Dependabot JSON schemas, yamllint over every YAML file of the
repository, shellcheck on the CI scripts (scripts/, tests/tools/, .ci/). Each is also shown to
fail on a broken copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.procs import ROOT, require, require_binary

pytestmark = pytest.mark.workflows

GITHUB = ROOT / ".github"
BIN = Path(sys.executable).parent
CI_SCRIPTS = [
    *sorted((ROOT / "scripts").glob("*.sh")),
    *sorted((ROOT / "tests" / "tools").glob("*.sh")),
    ROOT / ".ci" / "run",
    ROOT / ".ci" / "deps",
]


def run(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def venv_tool(name: str) -> str:
    path = BIN / name
    require(path.exists(), f"`{name}` is not in the venv (make setup)")
    return str(path)


def actionlint_argv(actionlint: Path) -> list[str]:
    # shellcheck checks every `run:` script when installed (apt install shellcheck).
    shellcheck = shutil.which("shellcheck") or ""
    return [str(actionlint), "-no-color", "-oneline", f"-shellcheck={shellcheck}", "-pyflakes="]


def test_actionlint_is_clean(actionlint: Path) -> None:
    done = run(actionlint_argv(actionlint))
    assert done.returncode == 0, done.stdout + done.stderr


def copy_project(tmp_path: Path) -> Path:
    """A git repository holding a copy of .github/ (actionlint looks for the project root)."""
    shutil.copytree(GITHUB, tmp_path / ".github")
    assert run(["git", "init", "-q", str(tmp_path)]).returncode == 0
    return tmp_path


def test_actionlint_catches_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    copy_project(tmp_path)
    release = tmp_path / ".github" / "workflows" / "release.yml"
    text = release.read_text()
    old = "needs: [images, deploy-dev]"
    assert old in text
    release.write_text(text.replace(old, "needs: [images, deploy-staging]"))
    done = run(actionlint_argv(actionlint), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "deploy-staging" in done.stdout and "release.yml" in done.stdout, done.stdout


def test_actionlint_runs_shellcheck_on_run_scripts(actionlint: Path, tmp_path: Path) -> None:
    require_binary("shellcheck")
    copy_project(tmp_path)
    retrain = tmp_path / ".github" / "workflows" / "retrain.yml"
    text = retrain.read_text()
    old = 'for p in "${params[@]}"; do'
    assert old in text
    retrain.write_text(text.replace(old, "for p in ${params[@]}; do"))
    done = run(actionlint_argv(actionlint), cwd=tmp_path)
    assert done.returncode == 1 and "shellcheck" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        ("vendor.github-workflows", sorted((GITHUB / "workflows").glob("*.yml"))),
        ("vendor.github-actions", sorted((GITHUB / "actions").glob("*/action.yml"))),
        ("vendor.dependabot", [GITHUB / "dependabot.yml"]),
    ],
    ids=["workflows", "actions", "dependabot"],
)
def test_files_match_their_schema(schema: str, files: list[Path]) -> None:
    assert files
    done = run([venv_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflow_schema_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    text = (GITHUB / "workflows" / "ci.yml").read_text()
    broken.write_text(text.replace("timeout-minutes: 20", "timeout-minutes: soon", 1))
    schema = "vendor.github-workflows"
    done = run([venv_tool("check-jsonschema"), "--builtin-schema", schema, str(broken)])
    assert done.returncode == 1 and "timeout-minutes" in done.stdout, done.stdout


def test_yamllint_is_clean_on_the_whole_repository() -> None:
    done = run([venv_tool("yamllint"), "--strict", "-f", "parsable", "."])
    assert done.returncode == 0, done.stdout + done.stderr
    # It did look at the files that matter (not an ignore pattern swallowing them).
    listed = run([venv_tool("yamllint"), "--list-files", "."]).stdout.split()
    names = {Path(p).as_posix().removeprefix("./") for p in listed}
    wanted = {
        ".github/workflows/ci.yml",
        "compose/docker-compose.yml",
        "monitoring/prometheus/prometheus.yml",
        "monitoring/grafana/provisioning/datasources/prometheus.yml",
    }
    assert wanted <= names, wanted - names
    assert not any(n.startswith((".venv/", ".cepage/", "node_modules/")) for n in names)


def test_yamllint_config_is_ansible_lint_compatible() -> None:
    config = yaml.safe_load((ROOT / ".yamllint").read_text())
    rules = config["rules"]
    assert rules["truthy"]["allowed-values"] == ["true", "false"]
    assert rules["comments"]["min-spaces-from-content"] == 1
    assert rules["octal-values"] == {"forbid-implicit-octal": True, "forbid-explicit-octal": True}
    for ignored in (".venv/", ".cepage/", "node_modules/"):
        assert ignored in config["ignore"]


def test_yamllint_catches_broken_yaml(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("enabled: yes \nmode: 0644\nlist: [ a,  b ]\n")
    done = run(
        [venv_tool("yamllint"), "-c", str(ROOT / ".yamllint"), "-f", "parsable", str(broken)]
    )
    assert done.returncode == 1
    for rule in ("(truthy)", "(trailing-spaces)", "(octal-values)"):
        assert rule in done.stdout, done.stdout


def test_ci_scripts_pass_shellcheck() -> None:
    shellcheck = require_binary("shellcheck")
    assert len(CI_SCRIPTS) > 5, CI_SCRIPTS
    done = run([shellcheck, *map(str, CI_SCRIPTS)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_script_builds_a_cached_versioned_binary(actionlint: Path) -> None:
    done = run([str(actionlint), "-version"])
    assert done.returncode == 0 and done.stdout.startswith("v1."), done.stdout
    script = (ROOT / "tests" / "tools" / "actionlint.sh").read_text()
    assert 'VERSION="${ACTIONLINT_VERSION:-1.7.12}"' in script
