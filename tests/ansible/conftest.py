"""Fixtures for the Ansible tests: the tools, the private Docker engine, and running playbooks.

The engine is the offline shim the Docker tests use (``tests/tools/docker_engine.py``: a private
dockerd under ``~/.cache/cepage/docker/`` and a debootstrap-made ``python:3.11-slim``); the host
image (``tests/ansible/host/Dockerfile``) is a fresh Scaleway instance as cloud-init leaves it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.docker_engine import private_engine
from tests.support.procs import BIN, ROOT, require

PLAYBOOKS = ROOT / "playbooks"
HERE = Path(__file__).resolve().parent
INVENTORY_JSON = HERE / "terraform-inventory.dev.json"
HOST_IMAGE = "cepage-ansible-host:test"
APT_CACHE = Path(os.environ.get("CEPAGE_CACHE", Path.home() / ".cache" / "cepage")) / "apt"
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)

# Test secrets (not real ones): what an operator writes into the environment's vault.
TEST_VAULT = """\
vault_cepage_scw_access_key: SCWTESTTESTTESTTEST1
vault_cepage_scw_secret_key: 4a1b0c2d-0000-4000-8000-000000000001
vault_cepage_postgres_password: pg-test-password-1
vault_cepage_feedback_key: feedback-test-key-1
vault_cepage_proxy_password_hash: "$2a$14$abcdefghijklmnopqrstuv0123456789ABCDEFGHIJKLMNOPQRSTU"
vault_cepage_generated:
  grafana_admin_password: grafana-test-password-1
  backup_passphrase: backup-test-passphrase-1
vault_cepage_role_keys:
  hosts: {access_key: SCWHOSTSHOSTSHOSTS01, secret_key: 4a1b0c2d-0000-4000-8000-0000000000a1}
  backup: {access_key: SCWBACKUPBACKUPBACK1, secret_key: 4a1b0c2d-0000-4000-8000-0000000000b1}
"""
VAULT_PASSWORD = "test-vault-password"


def pytest_configure(config: pytest.Config) -> None:
    # Until pyproject.toml registers it (--strict-markers).
    config.addinivalue_line(
        "markers", "ansible: ansible-lint, syntax checks, real applies and the backup/restore drill"
    )


def tool(name: str) -> str:
    """A tool of the venv (ansible-playbook, ansible-lint, ...): required."""
    path = BIN / name
    require(path.exists(), f"`{name}` is not installed in the venv (make setup)")
    return str(path)


@dataclass(frozen=True)
class Run:
    """One ansible-playbook run: its output and the PLAY RECAP per host."""

    returncode: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(self.output)
        }

    def assert_ok(self) -> None:
        recap = self.recap()
        assert self.returncode == 0 and recap, f"ansible-playbook failed:\n{self.output[-6000:]}"
        for host, counts in recap.items():
            assert counts["failed"] == 0 and counts["unreachable"] == 0, (host, counts)

    def item_results(self, task: str) -> dict[str, str]:
        """Each loop item of ``task`` (the end of its name) -> its status (changed, ok,
        skipping); the default callback ends each item's line with a space."""
        results: dict[str, str] = {}
        for block in self.output.split("\nTASK [")[1:]:
            header, _, body = block.partition("\n")
            if header.split("]")[0].endswith(task):
                for match in re.finditer(r"^(\w+): \[[^]]+\] => \(item=(.+?)\)\s*$", body, re.M):
                    results[match.group(2)] = match.group(1)
        return results

    def changed_tasks(self) -> list[str]:
        """The tasks that reported a change (for idempotence failures)."""
        names: list[str] = []
        task = ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line
            elif line.startswith("changed:"):
                names.append(f"{task} {line}")
        return names


def ansible_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_PIPELINING="true",
    )
    env.update(extra)
    return env


def run_deploy(
    action: str, args: Sequence[str], env: Mapping[str, str], timeout: float = 600
) -> Run:
    """``playbooks/deploy.sh ACTION dev ARGS``: the path `make deploy|rollback|restore` takes."""
    done = subprocess.run(
        ["bash", str(PLAYBOOKS / "deploy.sh"), action, "dev", *args],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout + done.stderr)


def inventory_dir(base: Path, *, encrypt: bool) -> Path:
    """The dev environment's committed group_vars plus a vault with test secrets."""
    target = base / "inventory-dev"
    shutil.copytree(PLAYBOOKS / "inventories" / "dev" / "group_vars", target / "group_vars")
    vault = target / "group_vars" / "all" / "vault.yml"
    vault.write_text(TEST_VAULT)
    if encrypt:
        password = base / "vault-password"
        password.write_text(VAULT_PASSWORD + "\n")
        done = subprocess.run(
            [tool("ansible-vault"), "encrypt", "--vault-password-file", str(password), str(vault)],
            env=ansible_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        password.unlink()
        assert vault.read_text().startswith("$ANSIBLE_VAULT")
    return target


@dataclass(frozen=True)
class Engine:
    """The private Docker engine: the environment that points the docker CLI at it."""

    env: dict[str, str]
    host: str

    def docker(
        self, *args: str, timeout: float = 300, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["docker", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=input_text,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The private dockerd (reused if running, else started and stopped here) and the base image."""
    with private_engine() as (running, env):
        env["DOCKER_BUILDKIT"] = "0"
        yield Engine(env=env, host=running.host)


@dataclass(frozen=True)
class Host:
    """A container standing for a fresh instance, reached with the docker_api connection."""

    engine: Engine
    name: str

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.engine.docker("exec", self.name, "sh", "-c", script, check=check)

    def read(self, path: str) -> str:
        return self.sh(f"cat {path}").stdout

    def connection_args(self) -> list[str]:
        return [
            "-e",
            "ansible_connection=community.docker.docker_api",
            "-e",
            f"ansible_docker_docker_host={self.engine.host}",
            "-e",
            f"ansible_docker_host={self.name}",
        ]


@pytest.fixture(scope="module")
def host(engine: Engine) -> Iterator[Host]:
    """A container of the host image (built here; the layer cache makes later builds instant)."""
    engine.docker("build", "-q", "-t", HOST_IMAGE, str(HERE / "host"), timeout=900)
    name = f"cepage-ansible-{uuid.uuid4().hex[:8]}"
    APT_CACHE.mkdir(parents=True, exist_ok=True)
    engine.docker(
        "run", "-d", "--name", name, "--hostname", "cepage-dev-service-1",
        # nft needs it to check and load the rules, in the container's own network namespace.
        "--cap-add", "NET_ADMIN",
        # Downloaded packages kept between runs (the package lists stay the image's).
        "-v", f"{APT_CACHE}:/var/cache/apt/archives",
        HOST_IMAGE, "sleep", "infinity",
    )  # fmt: skip
    try:
        yield Host(engine=engine, name=name)
    finally:
        engine.docker("rm", "-f", name, check=False)
