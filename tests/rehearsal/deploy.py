"""Deploying to a rehearsal's hosts by `make deploy`'s path (playbooks/deploy.sh), services on.

The inventory folder is the environment's as an operator has it: Terraform's output
(``hosts.inventory``), the environment's committed group_vars, an encrypted vault (the apply
test's secrets, with a proxy password hash whose password is known here), and the rehearsal's
own settings (what differs from Scaleway, each with its reason: ``REHEARSAL_VARS``). Ansible
reaches the hosts with the docker_api connection (a second inventory source).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stack.processes import ROOT
from tests.ansible.conftest import TEST_VAULT, VAULT_PASSWORD, Run, ansible_env, tool
from tests.rehearsal import hosts, lb
from tests.rehearsal.hosts import Rehearsal

PLAYBOOKS = ROOT / "playbooks"
DOMAIN = "rehearsal.internal"  # .internal: the proxy's own CA signs its certificates
PROXY_USER = "admin"  # compose's default CEPAGE_PROXY_USER
PROXY_PASSWORD = "rehearsal-operator-password"  # pragma: allowlist secret
TEST_HASH = "$2a$14$abcdefghijklmnopqrstuv0123456789ABCDEFGHIJKLMNOPQRSTU"  # TEST_VAULT's


def rehearsal_vars(registry: str) -> dict[str, Any]:
    """What differs from a Scaleway instance, and why (the environment's extra group_vars)."""
    return {
        # No Block Storage device: the data volume's mount point is a volume of the container.
        "cepage_storage_manage_volume": False,
        # download.docker.com is unreachable: Debian's docker.io (the host image carries the
        # compose v2 plugin, which Debian 12 does not package).
        "cepage_docker_package_source": "debian",
        # The local registry speaks plain HTTP on the private network, and stands in for Docker
        # Hub too (a pull-through mirror holding the upstream images or their stand-ins).
        "cepage_docker_daemon_options": {
            "insecure-registries": [registry],
            "registry-mirrors": [f"http://{registry}"],
        },
        # Every secret is in the vault: Secret Manager is not asked.
        "cepage_secret_manager": False,
        # The load balancer's stand-in runs its health checks TIME_SCALE times faster than
        # Scaleway's (tests/rehearsal/lb.py): the deploy's wait for it is scaled the same way.
        "cepage_stack_lb_settle_seconds": lb.settle_seconds(),
    }


def password_hash() -> str:
    """The bcrypt hash of PROXY_PASSWORD (cost 10), by the proxy's own Caddy."""
    done = subprocess.run(
        [str(hosts.caddy_binary()), "hash-password", "--plaintext", PROXY_PASSWORD,
         "--bcrypt-cost", "10"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@dataclass(frozen=True)
class Deployer:
    """Runs playbooks/deploy.sh against a rehearsal, with its inventory folder."""

    rehearsal: Rehearsal
    directory: Path
    env: dict[str, str]

    def deploy(
        self,
        *args: str,
        action: str = "deploy",
        tag: str | None = None,
        digests: Path | None = None,
        timeout: float = 1800,
    ) -> Run:
        """deploy.sh ACTION with ``args``; ``tag`` (IMAGE_TAG) and ``digests`` (IMAGE_DIGESTS)
        replace the prepared tag for this run (a rollback takes none: the host knows it)."""
        argv = ["bash", str(PLAYBOOKS / "deploy.sh"), action, self.rehearsal.layout,
                "-i", str(self.directory / "connection.yml"), *args]  # fmt: skip
        env = dict(self.env)
        if tag is not None:
            env["IMAGE_TAG"] = tag
        if digests is not None:
            env["IMAGE_DIGESTS"] = str(digests)
        if action != "deploy":
            env.pop("IMAGE_TAG", None)
        # Written to runs.log as it runs, so that a deploy stopped by a timeout (pytest's or
        # this one) still leaves what it was doing, task by task.
        log = self.directory / "runs.log"
        with log.open("ab") as out:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            start = out.tell()
            done = subprocess.run(
                argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )  # fmt: skip
            out.write(b"\n")
        with log.open("rb") as written:
            written.seek(start)
            output = written.read().decode(errors="replace")
        return Run(done.returncode, output)


def prepare(rehearsal: Rehearsal, base: Path, tag: str, admin_cidrs: Sequence[str]) -> Deployer:
    """The inventory folder (Terraform's output, group_vars, encrypted vault) and the runner."""
    assert rehearsal.registry is not None
    env_dir = PLAYBOOKS / "inventories" / rehearsal.layout / "group_vars"
    target = base / f"inventory-{rehearsal.layout}"
    shutil.copytree(env_dir, target / "group_vars")
    all_vars = target / "group_vars" / "all"
    (all_vars / "rehearsal.yml").write_text(
        "# The rehearsal's settings (tests/rehearsal/deploy.py: what differs from Scaleway).\n"
        + yaml.safe_dump(rehearsal_vars(rehearsal.registry.pull), sort_keys=False)
    )
    vault = all_vars / "vault.yml"
    vault.write_text(TEST_VAULT.replace(TEST_HASH, password_hash()))
    password = base / "vault-password"
    password.write_text(VAULT_PASSWORD + "\n")
    encrypted = subprocess.run(
        [tool("ansible-vault"), "encrypt", "--vault-password-file", str(password), str(vault)],
        env=ansible_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    password.unlink()
    if encrypted.returncode != 0:
        raise RuntimeError(encrypted.stderr)
    terraform = base / "terraform-output.json"
    terraform.write_text(
        json.dumps(hosts.inventory(rehearsal, DOMAIN, admin_cidrs), indent=2) + "\n"
    )
    (target / "connection.yml").write_text(
        yaml.safe_dump(hosts.connection_inventory(rehearsal), sort_keys=False)
    )
    env = ansible_env(
        CEPAGE_INVENTORY_DIR=str(target),
        CEPAGE_INVENTORY_JSON=str(terraform),
        ANSIBLE_PLAYBOOK=tool("ansible-playbook"),
        ANSIBLE_VAULT_PASSWORD=VAULT_PASSWORD,
        # Each task's start time and duration in runs.log, and the slowest tasks at the end of
        # each run: where a deploy's minutes go, for CI's time budget.
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        PROFILE_TASKS_TASK_OUTPUT_LIMIT="25",
        IMAGE_TAG=tag,
    )
    return Deployer(rehearsal=rehearsal, directory=target, env=env)


def recap_line(run: Run) -> Mapping[str, Mapping[str, int]]:
    return run.recap()
