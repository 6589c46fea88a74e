"""A real apply of playbooks/site.yml to a fresh instance (a container), by `make deploy`'s path.

``playbooks/deploy.sh deploy dev`` runs with the Terraform-shaped inventory
(terraform-inventory.dev.json), the dev group_vars and an encrypted vault (password from
ANSIBLE_VAULT_PASSWORD), against a container of tests/ansible/host/Dockerfile: packages are
installed from Debian's mirror for real, files rendered for real, sshd/nft/fail2ban/visudo check
them for real. Then the same deploy runs again and must report changed=0.

What this container cannot do, and how it is checked instead (the test says so):
* no systemd runs in it (``cepage_start_services=false``): services are not started, enabled or
  restarted; their configuration (sshd, nftables, fail2ban, chrony, unattended-upgrades, the
  backup timer and service units, node_exporter's arguments) is verified as rendered, and checked
  by the daemons' own config testers where they have one (``sshd -T``, ``nft -c``/``nft -f`` in the
  container's network namespace, ``fail2ban-client -t``, ``visudo -c``);
* no Docker repository or registry is reachable offline (``cepage_docker_install_packages=false``):
  Docker's packages are not installed and the stack is not pulled or started; daemon.json, the
  compose files and .env are verified as rendered, and the rendered project is validated by
  ``docker-compose config`` on the test machine;
* no block device (``cepage_storage_manage_volume=false``): the data volume is not formatted
  or mounted; daemon.json's data root on it is checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import (
    INVENTORY_JSON,
    VAULT_PASSWORD,
    Host,
    Run,
    ansible_env,
    inventory_dir,
    run_deploy,
    tool,
)
from tests.support.procs import ROOT, require_binary

pytestmark = [pytest.mark.ansible, pytest.mark.slow]

TAG = "v1.2.3"
PROXY_HASH = "$2a$14$abcdefghijklmnopqrstuv0123456789ABCDEFGHIJKLMNOPQRSTU"  # the test vault's
# What the container cannot do (see the module docstring), switched off by variables.
OFFLINE = [
    "-e", "cepage_start_services=false",
    "-e", "cepage_docker_install_packages=false",
    "-e", "cepage_storage_manage_volume=false",
]  # fmt: skip
INVENTORY = json.loads(INVENTORY_JSON.read_text())["all"]
STACK_VARS = INVENTORY["vars"]
HOST_VARS = INVENTORY["children"]["control"]["hosts"]["cepage-dev-service-1"]


@dataclass(frozen=True)
class Deployed:
    host: Host
    env: dict[str, str]
    first: Run
    second: Run

    def deploy(self, action: str, *args: str) -> Run:
        return run_deploy(action, [*self.host.connection_args(), *OFFLINE, *args], self.env)


@pytest.fixture(scope="module")
def deployed(host: Host, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    base = tmp_path_factory.mktemp("ansible-apply")
    inventory = inventory_dir(base, encrypt=True)
    env = ansible_env(
        CEPAGE_INVENTORY_DIR=str(inventory),
        CEPAGE_INVENTORY_JSON=str(INVENTORY_JSON),
        ANSIBLE_PLAYBOOK=tool("ansible-playbook"),
        ANSIBLE_VAULT_PASSWORD=VAULT_PASSWORD,
        IMAGE_TAG=TAG,
    )
    args = [*host.connection_args(), *OFFLINE]
    first = run_deploy("deploy", args, env, timeout=900)
    first.assert_ok()
    second = run_deploy("deploy", args, env, timeout=600)
    yield Deployed(host=host, env=env, first=first, second=second)


def test_converge_changes_the_fresh_host(deployed: Deployed) -> None:
    recap = deployed.first.recap()
    assert recap["cepage-dev-service-1"]["changed"] > 10, deployed.first.output[-3000:]


def test_second_run_changes_nothing(deployed: Deployed) -> None:
    deployed.second.assert_ok()
    recap = deployed.second.recap()
    assert recap["cepage-dev-service-1"]["changed"] == 0, "\n".join(deployed.second.changed_tasks())
    # Nothing to copy either: every compose file is skipped after one look at the host's.
    copies = deployed.second.item_results("The repository's compose files, as they are")
    assert copies and set(copies.values()) == {"skipping"}, copies


def test_admin_user_with_sudo(deployed: Deployed) -> None:
    host = deployed.host
    assert "sudo" in host.sh("id -nG cepage").stdout.split()
    sudoers = host.read("/etc/sudoers.d/cepage-admin")
    assert sudoers.strip().endswith("cepage ALL=(ALL) NOPASSWD:ALL")
    assert "parsed OK" in host.sh("visudo -c").stdout
    # Locked password: SSH keys are the only way in.
    assert host.sh("passwd -S cepage").stdout.split()[1] == "L"


def test_sshd_keys_only_no_root(deployed: Deployed) -> None:
    """sshd's own effective configuration (sshd -T), main file plus the rendered drop-in."""
    effective = deployed.host.sh("mkdir -p /run/sshd && sshd -T").stdout.splitlines()
    settings = dict(line.split(" ", 1) for line in effective if " " in line)
    assert settings["permitrootlogin"] == "no"
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["pubkeyauthentication"] == "yes"
    assert settings["allowusers"] == "cepage"
    assert "Ansible managed" in deployed.host.read("/etc/ssh/sshd_config.d/50-cepage.conf")


def test_firewall_mirrors_the_security_group(deployed: Deployed) -> None:
    """The rules load for real into the container's network namespace and say what the SG says."""
    host = deployed.host
    host.sh("nft -c -f /etc/nftables.conf && nft -f /etc/nftables.conf")
    ruleset = host.sh("nft list table inet cepage_filter").stdout
    assert "policy drop" in ruleset
    # The dev host is the bastion CI reaches for a run (scripts/ci_access.py): the security
    # group is SSH's allow-list there, so the host accepts 22 from any address it lets through.
    assert "tcp dport 22 accept" in ruleset
    assert "saddr" not in "".join(line for line in ruleset.splitlines() if "dport 22" in line)
    assert "tcp dport { 80, 443 } accept" in ruleset  # the dev instance is an edge host
    assert "ip saddr 172.16.32.0/22 accept" in ruleset
    # Docker's tables survive: the main file includes cepage's table, it never flushes the ruleset.
    assert "flush ruleset" not in host.read("/etc/nftables.conf")


def test_fail2ban_unattended_upgrades_time_sync(deployed: Deployed) -> None:
    host = deployed.host
    assert "configuration test is successful" in host.sh("fail2ban-client -t 2>&1").stdout
    jail = host.read("/etc/fail2ban/jail.d/cepage.local")
    assert "[sshd]" in jail and "enabled = true" in jail and "backend = systemd" in jail
    assert 'Unattended-Upgrade "1"' in host.read("/etc/apt/apt.conf.d/20auto-upgrades")
    origins = host.read("/etc/apt/apt.conf.d/52cepage-unattended-upgrades")
    assert "label=Debian-Security" in origins
    assert "pool 2.debian.pool.ntp.org iburst" in host.read("/etc/chrony/sources.d/cepage.sources")
    for package in ("nftables", "fail2ban", "unattended-upgrades", "chrony"):
        host.sh(f"dpkg-query -W -f='${{Status}}' {package} | grep -q 'install ok installed'")


def test_docker_daemon_json(deployed: Deployed) -> None:
    daemon = json.loads(deployed.host.read("/etc/docker/daemon.json"))
    # Log rotation has one home, the compose file's `logging` (tests/docker/test_config.py).
    assert "log-opts" not in daemon and "log-driver" not in daemon
    assert daemon["live-restore"] is True
    # The host holding the state keeps Docker's data on the data volume.
    assert daemon["data-root"] == "/srv/cepage-data/docker"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_compose_files_are_the_repositorys(deployed: Deployed) -> None:
    optional = ("docker-compose.production-log.yml", "docker-compose.retrain-trigger.yml")
    for name in ("docker-compose.yml", "docker-compose.prod.yml", "caddy/Caddyfile", *optional):
        on_host = deployed.host.read(f"/opt/cepage/compose/{name}")
        assert sha256(on_host) == sha256((ROOT / "compose" / name).read_text()), name


def test_a_compose_file_changed_on_the_host_is_put_back_and_only_it(deployed: Deployed) -> None:
    """The role copies a compose file only when the host's copy differs (one `find` looks at all
    of them first): an edited file and one whose mode changed are put back; the others, equal to
    the repository's, are skipped without a module run each."""
    host = deployed.host
    edited, loosened = "caddy/sites/app-off.caddy", "docker-compose.metrics.yml"
    host.sh(f"echo '# edited on the host' >> /opt/cepage/compose/{edited}")
    host.sh(f"chmod 0666 /opt/cepage/compose/{loosened}")
    run = deployed.deploy("deploy", "--tags", "stack")
    run.assert_ok()
    results = run.item_results("The repository's compose files, as they are")
    assert len(results) > 10, run.output[-3000:]
    assert {item for item, status in results.items() if status != "skipping"} == {
        edited,
        loosened,
    }, results
    assert results[edited] == results[loosened] == "changed", results
    assert host.read(f"/opt/cepage/compose/{edited}") == (ROOT / "compose" / edited).read_text()
    assert host.sh(f"stat -c '%a %U' /opt/cepage/compose/{loosened}").stdout.split() == [
        "644",
        "root",
    ]


def env_file(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value.strip("'")
    return values


def test_env_has_the_inventorys_values_and_the_vaults_secrets(deployed: Deployed) -> None:
    host = deployed.host
    mode = host.sh("stat -c '%a %U' /opt/cepage/compose/.env").stdout.split()
    assert mode == ["600", "root"]
    values = env_file(host.read("/opt/cepage/compose/.env"))
    ports = STACK_VARS["cepage_ports"]
    expected = {
        "CEPAGE_IMAGE_PREFIX": STACK_VARS["cepage_registry_endpoint"],
        "CEPAGE_IMAGE_TAG": TAG,
        "CEPAGE_HTTP_PORT": str(ports["http"]),
        "CEPAGE_HTTPS_PORT": str(ports["https"]),
        "CEPAGE_DOMAIN": HOST_VARS["ansible_host"],  # no domain_name: the public IP
        "CEPAGE_BIND_ADDRESS": "0.0.0.0",
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://cepage-dev-mlflow-artifacts/mlflow",
        "MLFLOW_S3_ENDPOINT_URL": STACK_VARS["cepage_s3_endpoint"],
        "AWS_DEFAULT_REGION": "fr-par",
        "POSTGRES_PASSWORD": "pg-test-password-1",
        "CEPAGE_FEEDBACK_KEY": "feedback-test-key-1",
        "GRAFANA_ADMIN_PASSWORD": "grafana-test-password-1",
        # The hosts' own key (security item 3), never the deployer's (the vault's).
        "AWS_ACCESS_KEY_ID": "SCWHOSTSHOSTSHOSTS01",
        "AWS_SECRET_ACCESS_KEY": "4a1b0c2d-0000-4000-8000-0000000000a1",
        "CEPAGE_ADMIN_CIDRS": " ".join(STACK_VARS["cepage_admin_cidrs"]),
        "CEPAGE_PROXY_PASSWORD_HASH": PROXY_HASH,
        "CEPAGE_SERVICE_REPLICAS": "1",
        # The single dev host runs the service: it keeps the production log.
        "CEPAGE_PREDICTION_LOG_DIR": "/var/lib/cepage/production",
    }
    assert {k: values.get(k) for k in expected} == expected
    # Settings the dev inventory leaves unset keep the default of their one home (the model's
    # name and the records per request: bento/settings.py), not a copy written here.
    assert "CEPAGE_MODEL_NAME" not in values and "CEPAGE_MAX_RECORDS" not in values
    # The deployer's key reads Secret Manager from the controller; no file on the host holds it.
    found = host.sh(
        "grep -rl 4a1b0c2d-0000-4000-8000-000000000001 /opt/cepage /etc/cepage /usr/local/sbin"
        " || true"
    )
    assert found.stdout.strip() == ""


def test_rendered_project_is_valid_compose(deployed: Deployed, tmp_path: Path) -> None:
    """docker-compose resolves the host's project (every ${VAR:?} satisfied by the .env)."""
    compose = require_binary("docker-compose")
    deployed.host.engine.docker("cp", f"{deployed.host.name}:/opt/cepage", str(tmp_path))
    project = tmp_path / "cepage" / "compose"
    # Hosts pull their images and never build: docker-compose 1.29 still wants the build contexts.
    for context in ("service", "caddy"):
        (project / context).mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEPAGE_", "MLFLOW_", "AWS_"))}
    done = subprocess.run(
        [compose, "--project-directory", str(project), "-f", str(project / "docker-compose.yml"),
         "-f", str(project / "docker-compose.prod.yml"),
         "-f", str(project / "docker-compose.production-log.yml"), "config"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    prefix = STACK_VARS["cepage_registry_endpoint"]
    for service in ("service", "ui", "mlflow"):
        assert config["services"][service]["image"] == f"{prefix}/{service}:{TAG}"
    assert config["services"]["service"]["deploy"]["replicas"] == 1
    assert config["services"]["service"]["environment"]["CEPAGE_PREDICTION_LOG"] == "/production"
    (log_mount,) = config["services"]["service"]["volumes"]
    assert log_mount["source"] == "/var/lib/cepage/production"
    # Only the proxy publishes ports, on every interface of this edge host (CEPAGE_BIND_ADDRESS).
    ports = [
        p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p['published']}:{p['target']}"
        for p in config["services"]["proxy"]["ports"]
    ]
    for port in (80, 443):
        assert any(p.startswith(f"0.0.0.0:{port}:{port}") for p in ports), ports
    # The monitoring role put the repository's configuration where the compose file mounts it.
    for path in (
        "monitoring/prometheus/prometheus.yml",
        "monitoring/grafana/provisioning",
        "monitoring/alertmanager/render.py",
    ):
        assert (tmp_path / "cepage" / path).exists(), path
    for name in ("prometheus", "alertmanager-config", "grafana"):
        for volume in config["services"][name]["volumes"]:
            source = str(volume["source"]) if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("/"):  # a bind mount, not a named volume
                assert Path(source).exists(), (name, source)


def test_prometheus_targets_for_this_deployment(deployed: Deployed) -> None:
    targets = "/opt/cepage/monitoring/prometheus/targets"
    # One host running the whole compose stack: Prometheus finds its service replicas by Docker's
    # DNS (dns_sd), so service.json is written empty (none is stale); node_exporter runs on the
    # host itself (compose's node-exporter profile stays off), listed by its private address.
    [node] = json.loads(deployed.host.read(f"{targets}/node.json"))
    assert [t.rsplit(":", 1)[1] for t in node["targets"]] == ["9100"], node
    assert json.loads(deployed.host.read(f"{targets}/service.json")) == []
    # The configuration beside them is the repository's, and reads them (file_sd).
    config = deployed.host.read("/opt/cepage/monitoring/prometheus/prometheus.yml")
    assert sha256(config) == sha256((ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    assert "targets/node.json" in config and "targets/service.json" in config
    args = deployed.host.read("/etc/default/prometheus-node-exporter")
    assert "--web.listen-address=:9100" in args


def test_backup_job_installed(deployed: Deployed) -> None:
    host = deployed.host
    timer = host.read("/etc/systemd/system/cepage-backup.timer")
    assert "OnCalendar=*-*-* 03:15:00" in timer and "Persistent=true" in timer
    assert "WantedBy=timers.target" in timer
    service = host.read("/etc/systemd/system/cepage-backup.service")
    assert "ExecStart=/usr/local/sbin/cepage-backup" in service and "Type=oneshot" in service
    for script in ("cepage-backup", "cepage-restore"):
        host.sh(f"test -x /usr/local/sbin/{script} && bash -n /usr/local/sbin/{script}")
    assert host.sh("stat -c '%a' /etc/cepage/backup.env").stdout.strip() == "600"
    settings = host.read("/etc/cepage/backup.env")
    assert "CEPAGE_BACKUP_PG_MODE=compose" in settings  # dev: PostgreSQL runs in the stack
    assert "CEPAGE_BACKUP_DESTINATION=backups:cepage-dev-backups" in settings
    assert "CEPAGE_BACKUP_RETENTION_DAYS=14" in settings
    host.sh("command -v rclone")


def test_production_log_directory_and_timer(deployed: Deployed) -> None:
    """The service's user owns the directory it writes its log to (bind-mounted into it); a
    timer moves the files to the bucket with the hosts' key, never the deployer's."""
    host = deployed.host
    owner = host.sh("stat -c '%u:%g %a' /var/lib/cepage/production").stdout.split()
    assert owner == ["1034:1034", "750"]
    timer = host.read("/etc/systemd/system/cepage-production-log.timer")
    assert "OnCalendar=*:0/5" in timer and "WantedBy=timers.target" in timer
    service = host.read("/etc/systemd/system/cepage-production-log.service")
    assert "ExecStart=/usr/local/sbin/cepage-production-log" in service
    host.sh("test -x /usr/local/sbin/cepage-production-log")
    host.sh("bash -n /usr/local/sbin/cepage-production-log")
    assert host.sh("stat -c '%a' /etc/cepage/production-log.env").stdout.strip() == "600"
    settings = host.read("/etc/cepage/production-log.env")
    assert "CEPAGE_PRODUCTION_LOG_DESTINATION=production:cepage-dev-production-log/production" in (
        settings
    )
    assert "RCLONE_CONFIG_PRODUCTION_ACCESS_KEY_ID=SCWHOSTSHOSTSHOSTS01" in settings
    # No GitHub token in the test vault: no retrain trigger, no token file.
    assert host.sh("test -e /opt/cepage/secrets/retrain-github-token", check=False).returncode


def test_rollout_then_rollback(deployed: Deployed) -> None:
    """A new tag is recorded; `make rollback` redeploys the one before it."""
    host = deployed.host
    assert host.read("/opt/cepage/releases").split() == [TAG]
    deployed.deploy("deploy", "--tags", "stack", "-e", "cepage_image_tag=v1.2.4").assert_ok()
    assert env_file(host.read("/opt/cepage/compose/.env"))["CEPAGE_IMAGE_TAG"] == "v1.2.4"
    assert host.read("/opt/cepage/releases").split() == [TAG, "v1.2.4"]
    rollback = deployed.deploy("rollback", "--tags", "stack")
    rollback.assert_ok()
    assert env_file(host.read("/opt/cepage/compose/.env"))["CEPAGE_IMAGE_TAG"] == TAG
    assert host.read("/opt/cepage/releases").split() == [TAG, "v1.2.4", TAG]


def test_rollback_after_a_failed_deploy_returns_to_the_tag_that_was_serving(
    deployed: Deployed,
) -> None:
    """A deploy that fails before it records its tag leaves it in `attempted`: the rollback goes
    back to the newest recorded tag, not one further (here TAG, serving, not v1.2.4)."""
    host = deployed.host
    releases = host.read("/opt/cepage/releases").split()
    assert releases[-1] == TAG
    host.sh("echo v9.9.9-broken > /opt/cepage/attempted")  # what a deploy failing in `up` leaves
    deployed.deploy("rollback", "--tags", "stack").assert_ok()
    assert env_file(host.read("/opt/cepage/compose/.env"))["CEPAGE_IMAGE_TAG"] == TAG
    assert host.read("/opt/cepage/attempted").strip() == TAG


def _digests(seed: str) -> dict[str, str]:
    """One well-formed digest per image the prod compose file pins."""
    names = subprocess.run(
        ["bash", str(ROOT / "scripts" / "images.sh"), "names"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return {n: "sha256:" + hashlib.sha256(f"{seed}/{n}".encode()).hexdigest() for n in names}


def test_digest_pinned_rollout_and_the_rollback_pins_them_again(
    deployed: Deployed, tmp_path: Path
) -> None:
    """IMAGE_DIGESTS (scripts/images.sh digests' JSON) pins every image by digest in .env, the
    digests are recorded with the tag, and a rollback to that tag pins the same bytes again. A
    deploy that must pin (prod's default) refuses a bare tag or a malformed digest before it
    changes anything."""
    host = deployed.host
    pinned = _digests("v2.0.0")
    digests_file = tmp_path / "digests.json"
    digests_file.write_text(json.dumps(pinned))
    env = {**deployed.env, "IMAGE_TAG": "v2.0.0", "IMAGE_DIGESTS": str(digests_file)}
    run_deploy("deploy", [*host.connection_args(), *OFFLINE, "--tags", "stack"], env).assert_ok()
    values = env_file(host.read("/opt/cepage/compose/.env"))
    assert values["CEPAGE_IMAGE_TAG"] == "v2.0.0"
    assert {k: v for k, v in values.items() if k.endswith("_DIGEST")} == {
        f"CEPAGE_{name.upper()}_DIGEST": f"@{digest}" for name, digest in pinned.items()
    }
    assert json.loads(host.read("/opt/cepage/release-digests.json"))["v2.0.0"] == pinned

    # A bare tag where digests are required: refused, nothing rendered.
    before = host.read("/opt/cepage/compose/.env")
    refused = deployed.deploy(
        "deploy", "--tags", "stack", "-e", "cepage_image_tag=v2.0.1",
        "-e", "cepage_stack_require_image_digests=true",
    )  # fmt: skip
    assert refused.returncode != 0 and "deploys images by digest" in refused.output
    assert "Missing: mlflow, proxy, retrain, service, ui." in refused.output, refused.output[-2000:]
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps({**pinned, "service": "sha256:not-hex"}))
    bad = run_deploy(
        "deploy",
        [*host.connection_args(), *OFFLINE, "--tags", "stack"],
        {**env, "IMAGE_TAG": "v2.0.1", "IMAGE_DIGESTS": str(bad_file)},
    )
    assert bad.returncode != 0 and "sha256:<64 hex>" in bad.output
    assert host.read("/opt/cepage/compose/.env") == before

    # dev also takes a bare tag (no pin); the rollback returns to v2.0.0 and its digests.
    deployed.deploy("deploy", "--tags", "stack", "-e", "cepage_image_tag=v2.0.2").assert_ok()
    values = env_file(host.read("/opt/cepage/compose/.env"))
    assert values["CEPAGE_IMAGE_TAG"] == "v2.0.2"
    assert not [k for k in values if k.endswith("_DIGEST")]
    deployed.deploy("rollback", "--tags", "stack").assert_ok()
    values = env_file(host.read("/opt/cepage/compose/.env"))
    assert values["CEPAGE_IMAGE_TAG"] == "v2.0.0"
    assert values["CEPAGE_SERVICE_DIGEST"] == f"@{pinned['service']}"


def test_the_bootstraps_mlflow_only_deploy_is_never_a_release(deployed: Deployed) -> None:
    """`make bootstrap`'s first deploy (scripts/bootstrap.py mlflow_only_vars, the very values it
    passes): the control host only, MLflow's image pinned alone, prod's full-digest rule off. It
    renders that tag, but records no release and no digests: a later rollback can never land on
    a tag that has no service image."""
    from scripts.bootstrap import mlflow_only_vars

    host = deployed.host
    releases = host.read("/opt/cepage/releases")
    digests_file = "cat /opt/cepage/release-digests.json 2>/dev/null || true"
    recorded = host.sh(digests_file).stdout  # none yet when this test runs alone
    serving = env_file(host.read("/opt/cepage/compose/.env"))["CEPAGE_IMAGE_TAG"]
    digest = "sha256:" + hashlib.sha256(b"mlflow-only").hexdigest()
    extra = {**mlflow_only_vars({"database": None}), "cepage_image_digests": {"mlflow": digest}}
    assert extra["cepage_stack_services"] == ["mlflow", "prometheus", "postgres"]
    run = run_deploy(
        "deploy",
        [*host.connection_args(), *OFFLINE, "--limit", "control", "-e", json.dumps(extra)],
        {**deployed.env, "IMAGE_TAG": "0123456789ab-bootstrap"},
    )
    run.assert_ok()
    values = env_file(host.read("/opt/cepage/compose/.env"))
    assert values["CEPAGE_IMAGE_TAG"] == "0123456789ab-bootstrap"
    assert values["CEPAGE_MLFLOW_DIGEST"] == f"@{digest}"
    assert host.read("/opt/cepage/releases") == releases
    assert host.sh(digests_file).stdout == recorded
    deployed.deploy("rollback", "--tags", "stack").assert_ok()
    assert env_file(host.read("/opt/cepage/compose/.env"))["CEPAGE_IMAGE_TAG"] == serving
