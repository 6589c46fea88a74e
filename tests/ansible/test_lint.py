"""ansible-lint (production profile) and a syntax check of every playbook; deploy.sh's guards."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import (
    HERE,
    INVENTORY_JSON,
    PLAYBOOKS,
    ansible_env,
    inventory_dir,
    run_deploy,
    tool,
)
from tests.support.procs import BIN, require

pytestmark = pytest.mark.ansible

PLAYBOOK_FILES = sorted(p.name for p in PLAYBOOKS.glob("*.yml"))
ROLES = sorted(p.name for p in (PLAYBOOKS / "roles").iterdir() if p.is_dir())


def variables_of(roles: list[str], *paths: Path) -> list[str]:
    """Every `<role>_...` name of the given roles written in the files under paths."""
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, roles)) + r")_\w+")
    return [
        f"{file.relative_to(PLAYBOOKS)}: {match.group(0)}"
        for path in paths
        for file in ([path] if path.is_file() else sorted(path.rglob("*")))
        if file.is_file()
        for match in pattern.finditer(file.read_text())
    ]


@pytest.mark.parametrize("role", ROLES)
def test_a_role_reads_no_other_roles_variables(role: str) -> None:
    """What roles share reaches each as its own parameters (playbooks/group_vars/all/main.yml):
    no role names another role's variables, so none depends on another's defaults or facts."""
    assert variables_of([r for r in ROLES if r != role], PLAYBOOKS / "roles" / role) == []


def test_playbooks_read_shared_values_not_a_roles_variables() -> None:
    """site.yml and restore.yml use the shared values, never a role's internals."""
    assert variables_of(ROLES, *(PLAYBOOKS / name for name in PLAYBOOK_FILES)) == []


def test_every_playbook_is_checked() -> None:
    assert {"site.yml", "restore.yml"} <= set(PLAYBOOK_FILES)


def test_ansible_lint_production_profile() -> None:
    done = subprocess.run(
        [tool("ansible-lint"), "--profile", "production", "--nocolor", *PLAYBOOK_FILES, "roles"],
        cwd=PLAYBOOKS,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


@pytest.mark.parametrize("playbook", PLAYBOOK_FILES)
def test_syntax_check(playbook: str) -> None:
    done = subprocess.run(
        [tool("ansible-playbook"), "--syntax-check", "-i", str(INVENTORY_JSON), playbook],
        cwd=PLAYBOOKS,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_terraform_inventory_is_read_as_is() -> None:
    """The inventory is Terraform's output unchanged: groups, hosts and the stack's settings."""
    done = subprocess.run(
        [tool("ansible-inventory"), "-i", str(INVENTORY_JSON), "--host", "cepage-dev-service-1"],
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"cepage_registry_endpoint": "rg.fr-par.scw.cloud/cepage-dev"' in done.stdout


def test_deploy_refuses_without_a_vault(tmp_path: Path) -> None:
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    env = ansible_env(
        CEPAGE_INVENTORY_DIR=str(tmp_path),
        CEPAGE_INVENTORY_JSON=str(INVENTORY_JSON),
        ANSIBLE_PLAYBOOK=tool("ansible-playbook"),
    )
    run = run_deploy("deploy", [], env)
    assert run.returncode != 0
    assert "vault.example.yml" in run.output


def test_deploy_refuses_an_encrypted_vault_without_its_password(tmp_path: Path) -> None:
    inventory = inventory_dir(tmp_path, encrypt=True)
    env = ansible_env(
        CEPAGE_INVENTORY_DIR=str(inventory),
        CEPAGE_INVENTORY_JSON=str(INVENTORY_JSON),
        ANSIBLE_PLAYBOOK=tool("ansible-playbook"),
    )
    run = run_deploy("deploy", [], env)
    assert run.returncode != 0
    assert "ANSIBLE_VAULT_PASSWORD" in run.output


def test_files_that_can_lock_out_the_admin_are_validated_before_they_are_written() -> None:
    """sshd's and sudo's configuration: a broken one would cut Ansible off the host."""
    tasks = yaml.safe_load((PLAYBOOKS / "roles/cepage_common/tasks/main.yml").read_text())
    by_dest = {
        str((task.get("ansible.builtin.template") or {}).get("dest")): task[
            "ansible.builtin.template"
        ]
        for task in tasks
        if "ansible.builtin.template" in task
    }
    assert by_dest["/etc/ssh/sshd_config.d/50-cepage.conf"]["validate"] == "/usr/sbin/sshd -t -f %s"
    assert by_dest["/etc/sudoers.d/cepage-admin"]["validate"] == "/usr/sbin/visudo -cf %s"


def test_deploy_refuses_a_vault_in_clear(tmp_path: Path) -> None:
    inventory = inventory_dir(tmp_path, encrypt=False)
    env = ansible_env(
        CEPAGE_INVENTORY_DIR=str(inventory),
        CEPAGE_INVENTORY_JSON=str(INVENTORY_JSON),
        ANSIBLE_PLAYBOOK=tool("ansible-playbook"),
    )
    run = run_deploy("deploy", [], env)
    assert run.returncode != 0
    assert "is not encrypted: ansible-vault encrypt" in run.output


def test_secrets_stay_out_of_git() -> None:
    """The real vault and the generated inventory are ignored; only the examples are committed."""
    for path in (
        "playbooks/inventories/dev/group_vars/all/vault.yml",
        "playbooks/inventories/prod/group_vars/all/vault.yml",
        "playbooks/inventories/dev/terraform.json",
    ):
        done = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=PLAYBOOKS.parent, check=False
        )
        assert done.returncode == 0, f"{path} is not gitignored"
    for env in ("dev", "prod"):
        example = (PLAYBOOKS / "inventories" / env / "vault.example.yml").read_text()
        assert "CHANGE-ME" in example


def test_host_image_dockerfile_lints() -> None:
    hadolint = BIN / "hadolint"
    require(hadolint.exists(), "hadolint is not installed in the venv (make setup)")
    done = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(HERE / "host" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
