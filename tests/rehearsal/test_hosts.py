"""Milestone 1 of the rehearsal: hosts booting systemd on a private network, a registry they
reach, the inventory Terraform's output would give for them, Ansible's connection to each, and
a tear-down that leaves nothing behind. The prod layout (control + 2 service hosts): ~15 s warm.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from tests.ansible.conftest import ansible_env, tool
from tests.rehearsal import hosts
from tests.rehearsal.conftest import started
from tests.support.procs import ROOT

TERRAFORM_EXAMPLES = ROOT / "tests" / "ansible"


def fake(layout: str) -> hosts.Rehearsal:
    """A rehearsal's record without any container: for the inventory's shape alone."""
    rehearsal = hosts.Rehearsal(
        docker=hosts.Docker({}), run_id="000000", layout=layout, network="n",
        subnet="172.30.0.0/16", gateway="172.30.0.1",
        registry=hosts.Registry("r", "127.0.0.1:1", "rehearsal-registry:5000"),
    )  # fmt: skip
    for index, spec in enumerate(hosts.LAYOUTS[layout], start=2):
        rehearsal.hosts.append(hosts.Host(spec, f"c{index}", f"172.30.0.{index}", {}))
    return rehearsal


@pytest.mark.parametrize("layout", ["dev", "prod"])
def test_inventory_has_the_shape_of_terraforms_output(layout: str) -> None:
    """The same groups, host names and roles, host variables and stack variables as the example
    of `terraform output -json ansible_inventory` the Ansible tests use (plus the per-role API
    key ids iac/outputs.tf adds, which that example predates)."""
    example = json.loads((TERRAFORM_EXAMPLES / f"terraform-inventory.{layout}.json").read_text())
    ours = hosts.inventory(fake(layout), "rehearsal.internal", ["172.30.0.0/16"])
    assert set(ours["all"]["vars"]) == set(example["all"]["vars"]) | {"cepage_api_key_secret_ids"}
    for group in ("service", "control"):
        theirs_hosts = example["all"]["children"][group]["hosts"]
        our_hosts = ours["all"]["children"][group]["hosts"]
        assert set(our_hosts) == set(theirs_hosts), group
        for name, values in our_hosts.items():
            assert set(values) == set(theirs_hosts[name])
            assert values["cepage_roles"] == theirs_hosts[name]["cepage_roles"]
            assert (values["data_volume"] is None) == (theirs_hosts[name]["data_volume"] is None)
    expected_termination = example["all"]["vars"]["cepage_tls_termination"]
    assert ours["all"]["vars"]["cepage_tls_termination"] == expected_termination


@pytest.fixture(scope="module")
def prod(engine: hosts.Docker, host_image: str) -> Iterator[hosts.Rehearsal]:
    with started(engine, "prod", host_image) as rehearsal:
        yield rehearsal


@pytest.mark.rehearsal
@pytest.mark.slow
def test_prod_hosts_boot_systemd_and_reach_the_registry(prod: hosts.Rehearsal) -> None:
    assert [h.spec.name for h in prod.hosts] == [s.name for s in hosts.LAYOUTS["prod"]]
    for host in prod.hosts:
        state = prod.docker.run("exec", host.container, "systemctl", "is-system-running")
        assert state.stdout.strip() in ("running", "degraded"), host.spec.name
        # The registry, by the name the inventory gives the hosts' engines.
        assert prod.registry is not None
        prod.docker.run(
            "exec", host.container, "python3", "-c",
            f"import urllib.request; urllib.request.urlopen('http://{prod.registry.pull}/v2/')",
        )  # fmt: skip
        # Docker's data root and the data volume's mount point are volumes (not the overlay).
        mounts = prod.docker.run("exec", host.container, "findmnt", "-lno", "TARGET").stdout.split()
        assert "/var/lib/docker" in mounts and "/srv/cepage-data" in mounts


@pytest.mark.rehearsal
@pytest.mark.slow
def test_ansible_reaches_every_host_by_the_generated_inventory(
    prod: hosts.Rehearsal, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("rehearsal-inventory")
    terraform = base / "terraform.json"
    terraform.write_text(json.dumps(hosts.inventory(prod, "rehearsal.internal", [prod.subnet])))
    connection = base / "connection.yml"
    connection.write_text(yaml.safe_dump(hosts.connection_inventory(prod)))
    done = subprocess.run(
        [tool("ansible"), "all", "-i", str(terraform), "-i", str(connection), "-b", "-m",
         "ansible.builtin.command", "-a", "hostname"],
        env=ansible_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for host in prod.hosts:  # each answered under its own inventory name, as itself
        assert f"{host.spec.name} | CHANGED | rc=0 >>\n{host.spec.name}" in done.stdout


@pytest.mark.rehearsal
@pytest.mark.slow
def test_teardown_leaves_nothing(engine: hosts.Docker, host_image: str) -> None:
    del host_image  # built by its fixture
    rehearsal = hosts.start(engine, "dev")
    run = rehearsal.name("")
    rehearsal.teardown()
    assert engine.run("ps", "-a", "-q", "--filter", f"name={run}").stdout.strip() == ""
    assert engine.run("volume", "ls", "-q", "--filter", f"name={run}").stdout.strip() == ""
    assert engine.run("network", "ls", "-q", "--filter", f"name={run}").stdout.strip() == ""
