"""playbooks/tunnel.sh for real: a real sshd (Debian's openssh-server) on a high port of this
machine with throwaway host and client keys plays the bastion, and two HTTP servers on its
loopback play MLflow and Prometheus. The script must find the bastion in the inventory, forward
both, wait until they answer, run the command with MLFLOW_TRACKING_URI and
CEPAGE_SMOKE_PROMETHEUS_URL pointing at the forwards, return the command's status and close the
tunnel. Its argument and inventory errors are checked without sshd."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import ROOT, require

pytestmark = pytest.mark.workflows

TUNNEL = ROOT / "playbooks" / "tunnel.sh"
SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def inventory(tmp: Path, host: str, user: str, port: int | None = None) -> Path:
    """A Terraform-shaped inventory (tests/ansible's dev one) whose bastion is ``host``."""
    data = json.loads((ROOT / "tests" / "ansible" / "terraform-inventory.dev.json").read_text())
    data["all"]["vars"]["ansible_user"] = user
    for group in data["all"]["children"].values():
        for facts in group["hosts"].values():
            facts["ansible_host"] = host
            if port is not None:
                facts["ansible_port"] = port
    path = tmp / "inventory.json"
    path.write_text(json.dumps(data))
    return path


def tunnel(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CEPAGE_", "MLFLOW_"))}
    environ.update(PYTHON=sys.executable, **env)
    return subprocess.run(
        ["bash", str(TUNNEL), *args], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# --- without sshd ---------------------------------------------------------------------------------


def test_usage_and_inventory_errors(tmp_path: Path) -> None:
    for args in ((), ("dev",), ("dev", "true"), ("dev", "--")):
        done = tunnel(*args)
        assert done.returncode == 2 and "tunnel.sh ENV -- COMMAND" in done.stderr, args
    bad_env = tunnel("staging", "--", "true")
    assert bad_env.returncode == 2 and "ENV must be dev or prod" in bad_env.stderr
    missing = tunnel("dev", "--", "true", CEPAGE_INVENTORY_JSON=str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "is not a file" in missing.stderr
    no_control = tmp_path / "no-control.json"
    no_control.write_text(json.dumps({"all": {"children": {"service": {"hosts": {}}}}}))
    done = tunnel("dev", "--", "true", CEPAGE_INVENTORY_JSON=str(no_control))
    assert done.returncode == 2 and "no control host" in done.stderr
    saved = str(inventory(tmp_path, "127.0.0.1", "cepage"))
    wait = tunnel("dev", "--", "true", CEPAGE_TUNNEL_WAIT="soon", CEPAGE_INVENTORY_JSON=saved)
    assert wait.returncode == 2 and "CEPAGE_TUNNEL_WAIT" in wait.stderr


def test_the_remote_ports_are_the_ones_the_prod_compose_file_publishes_on_loopback() -> None:
    """tunnel.sh reads them from compose/docker-compose.prod.yml: MLflow and Prometheus are
    published there on the host's 127.0.0.1 only, at the local stack's ports (their one home is
    the dev override's variables, CEPAGE_MLFLOW_PORT and CEPAGE_PROMETHEUS_PORT)."""
    import yaml

    prod = yaml.safe_load((ROOT / "compose" / "docker-compose.prod.yml").read_text())
    dev = yaml.safe_load((ROOT / "compose" / "docker-compose.dev.yml").read_text())
    for service in ("mlflow", "prometheus"):
        assert prod["services"][service]["ports"] == dev["services"][service]["ports"], service
        for spec in prod["services"][service]["ports"]:
            assert spec.startswith("127.0.0.1:"), spec
    for service, spec in prod["services"].items():
        if service not in ("mlflow", "prometheus", "proxy"):
            assert "ports" not in spec, service


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    require(shellcheck is not None, "`shellcheck` is not installed")
    done = subprocess.run([str(shellcheck), str(TUNNEL)], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout


# --- with a real sshd -----------------------------------------------------------------------------


class Upstream(BaseHTTPRequestHandler):
    """MLflow's /health and Prometheus' /-/ready, and one page saying who answered."""

    name = "upstream"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = f"{self.name} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(name: str) -> ThreadingHTTPServer:
    handler = type(name, (Upstream,), {"name": name})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real sshd on 127.0.0.1:PORT accepting only a throwaway key of the current user."""
    require(SSHD.exists(), "`sshd` is not installed (Debian's openssh-server)")
    require(shutil.which("ssh-keygen") is not None, "`ssh-keygen` is not installed")
    tmp = tmp_path_factory.mktemp("sshd")
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / key)],
                       check=True)  # fmt: skip
    (tmp / "authorized_keys").write_text((tmp / "client.pub").read_text())
    (tmp / "authorized_keys").chmod(0o600)
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nListenAddress 127.0.0.2\nHostKey {tmp / 'host'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPidFile {tmp / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nAllowTcpForwarding yes\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation directory
    log = (tmp / "sshd.log").open("w")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while not listening(port):
            assert proc.poll() is None, (tmp / "sshd.log").read_text()
            assert time.monotonic() < deadline, "sshd did not listen"
            time.sleep(0.1)
        client = (
            f"ssh -F /dev/null -i {tmp / 'client'} -o IdentitiesOnly=yes "
            f"-o UserKnownHostsFile={tmp / 'known_hosts'} -o StrictHostKeyChecking=accept-new"
        )
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout
        yield {"port": port, "ssh": client, "user": user.strip(), "tmp": tmp}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[int, int]]:
    mlflow, prometheus = serve("mlflow"), serve("prometheus")
    try:
        yield mlflow.server_address[1], prometheus.server_address[1]
    finally:
        for httpd in (mlflow, prometheus):
            httpd.shutdown()
            httpd.server_close()


PROBE = """
import json, os, sys, urllib.request
mlflow, prometheus = os.environ["MLFLOW_TRACKING_URI"], os.environ["CEPAGE_SMOKE_PROMETHEUS_URL"]
print(json.dumps({
    "mlflow": mlflow, "prometheus": prometheus,
    "mlflow_says": urllib.request.urlopen(mlflow + "/api/2.0/mlflow/runs").read().decode(),
    "prometheus_says": urllib.request.urlopen(prometheus + "/api/v1/query").read().decode(),
    "args": sys.argv[1:],
}))
sys.exit(7)
"""


def test_the_command_runs_through_the_tunnel_which_is_closed_after(
    sshd: dict[str, Any], upstreams: tuple[int, int], tmp_path: Path
) -> None:
    mlflow_port, prometheus_port = upstreams
    done = tunnel(
        "dev", "--", sys.executable, "-c", PROBE, "an arg", "--flag",
        CEPAGE_INVENTORY_JSON=str(inventory(tmp_path, "127.0.0.1", sshd["user"], sshd["port"])),
        CEPAGE_SSH=sshd["ssh"], CEPAGE_MLFLOW_PORT=str(mlflow_port),
        CEPAGE_PROMETHEUS_PORT=str(prometheus_port), CEPAGE_TUNNEL_WAIT="30",
    )  # fmt: skip
    assert done.returncode == 7, done.stderr  # the command's own status
    seen = json.loads(done.stdout)
    assert seen["args"] == ["an arg", "--flag"]
    assert seen["mlflow_says"] == "mlflow /api/2.0/mlflow/runs"
    assert seen["prometheus_says"] == "prometheus /api/v1/query"
    local = [int(seen[name].rsplit(":", 1)[1]) for name in ("mlflow", "prometheus")]
    assert seen["mlflow"].startswith("http://127.0.0.1:") and local[0] != mlflow_port
    assert seen["prometheus"].startswith("http://127.0.0.1:") and local[1] != prometheus_port
    assert "tunnel to 127.0.0.1 closed" in done.stderr
    # The forwards are gone with the tunnel.
    assert not any(listening(port) for port in local)


def test_a_service_that_does_not_answer_stops_before_the_command(
    sshd: dict[str, Any], upstreams: tuple[int, int], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    done = tunnel(
        "dev", "--", "touch", str(marker),
        CEPAGE_INVENTORY_JSON=str(inventory(tmp_path, "127.0.0.1", sshd["user"], sshd["port"])),
        CEPAGE_SSH=sshd["ssh"], CEPAGE_MLFLOW_PORT=str(free_port()),
        CEPAGE_PROMETHEUS_PORT=str(upstreams[1]), CEPAGE_TUNNEL_WAIT="4",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "MLflow does not answer" in done.stderr and "Prometheus does not" not in done.stderr
    assert not marker.exists()


def test_an_unreachable_bastion_fails_after_the_wait(
    sshd: dict[str, Any], upstreams: tuple[int, int], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    started = time.monotonic()
    done = tunnel(
        "dev", "--", "touch", str(marker),
        CEPAGE_INVENTORY_JSON=str(inventory(tmp_path, "127.0.0.1", sshd["user"], free_port())),
        CEPAGE_SSH=sshd["ssh"], CEPAGE_MLFLOW_PORT=str(upstreams[0]),
        CEPAGE_PROMETHEUS_PORT=str(upstreams[1]), CEPAGE_TUNNEL_WAIT="3",
    )  # fmt: skip
    assert done.returncode == 1 and "no working tunnel" in done.stderr, done.stderr
    assert not marker.exists() and time.monotonic() - started < 60


# --- Ansible through the bastion (playbooks/deploy.sh with CEPAGE_SSH_VIA_BASTION=1) --------------


def test_ansible_reaches_a_service_host_only_through_the_bastion(
    sshd: dict[str, Any], tmp_path: Path
) -> None:
    """A prod-shaped inventory: the control host (the bastion) on the real sshd, a service host
    whose public address answers nobody (a documentation address) and whose private address is
    the sshd too (on another loopback address: ssh refuses a jump to itself). With
    ``cepage_ssh_via_bastion`` (what deploy.sh passes for CEPAGE_SSH_VIA_BASTION=1),
    playbooks/group_vars/all's ProxyJump reaches it; its host key is recorded under its public
    address (HostKeyAlias). Without it, the direct path fails."""
    ansible = Path(sys.executable).parent / "ansible"
    require(ansible.exists(), "`ansible` is not installed in the venv (make setup)")
    data = json.loads((ROOT / "tests" / "ansible" / "terraform-inventory.prod.json").read_text())
    top = data["all"]
    top["vars"]["ansible_user"] = sshd["user"]
    top["vars"]["ansible_python_interpreter"] = sys.executable
    control = top["children"]["control"]["hosts"]["cepage-prod-control"]
    control.update(ansible_host="127.0.0.1", ansible_port=sshd["port"])
    service = top["children"]["service"]["hosts"]
    service.pop("cepage-prod-service-2")
    service["cepage-prod-service-1"].update(
        ansible_host="192.0.2.10", private_ip="127.0.0.2", ansible_port=sshd["port"]
    )
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(data))
    # The client's configuration, which ssh also hands to the ProxyJump hop (-F).
    config = tmp_path / "ssh_config"
    known_hosts = tmp_path / "known_hosts"
    config.write_text(
        f"Host *\n  IdentityFile {sshd['tmp'] / 'client'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking accept-new\n"
        "  ConnectTimeout 5\n"
    )

    def ping(run: str, *extra: str) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        environ.update(
            ANSIBLE_CONFIG=str(ROOT / "playbooks" / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path / run),  # no shared master connection
        )
        return subprocess.run(
            [str(ansible), "all", "-i", str(path), "--playbook-dir", str(ROOT / "playbooks"),
             "-m", "ansible.builtin.ping", "-e", f"ansible_ssh_extra_args='-F {config}'",
             "-T", "10", *extra],
            env=environ, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    through = ping("through", "-e", "cepage_ssh_via_bastion=true")
    assert through.returncode == 0, through.stdout + through.stderr
    assert through.stdout.count("SUCCESS") == 2, through.stdout
    lines = known_hosts.read_text()
    assert "192.0.2.10 " in lines  # the service host's key, under its public address
    direct = ping("direct", "--limit", "cepage-prod-service-1")
    assert direct.returncode != 0 and "UNREACHABLE" in direct.stdout, direct.stdout
