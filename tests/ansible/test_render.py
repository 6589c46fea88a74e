"""Several hosts behind a load balancer (prod's shape), rendered without hosts.

The real apply covers one instance (dev). The split deployment's differences are values the roles
derive from the inventory: which services each host runs, where the proxy listens, what Prometheus
scrapes, where the backup job finds the database, and the .env of each host. tests/ansible/
render-hosts.yml renders them on the controller with the roles' own defaults and template and the
playbooks' shared values (playbooks/group_vars/all), from a prod-shaped Terraform inventory
(terraform-inventory.prod.json).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.conftest import HERE, TEST_VAULT, ansible_env, tool
from tests.support.procs import ROOT

pytestmark = pytest.mark.ansible

INVENTORY = json.loads((HERE / "terraform-inventory.prod.json").read_text())["all"]
SERVICE_HOSTS = INVENTORY["children"]["service"]["hosts"]
CONTROL = "cepage-prod-control"


REPLICAS = 2  # model API replicas per service instance, as in prod's group_vars
MAX_RECORDS = "500"  # an optional stack setting an environment gives


def render(out: Path, vault_text: str, *extra: str) -> Path:
    vault = out / "vault.yml"
    vault.write_text(vault_text)
    done = subprocess.run(
        [tool("ansible-playbook"), "-i", str(HERE / "terraform-inventory.prod.json"),
         "-e", f"@{vault}", "-e", f"render_dir={out}", "-e", f"cepage_service_replicas={REPLICAS}",
         "-e", f"cepage_stack_max_records={MAX_RECORDS}",
         # The playbook is in tests/ansible/: the repository is not its parent folder.
         "-e", f"cepage_repo_dir={ROOT}",
         *extra, str(HERE / "render-hosts.yml")],
        cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("render-prod"), TEST_VAULT)


GITHUB_TOKEN = "github_pat_test_only_0000000000"  # pragma: allowlist secret
WEBHOOK_TOKEN = "webhook-test-token-0000"  # pragma: allowlist secret


@pytest.fixture(scope="module")
def rendered_with_trigger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vault holds the alert-driven retrain's tokens; the environment excludes features from
    the production log and samples it."""
    vault = TEST_VAULT + (
        f"vault_cepage_retrain_github_token: {GITHUB_TOKEN}\n"
        f"vault_cepage_retrain_webhook_token: {WEBHOOK_TOKEN}\n"
    )
    settings = {
        "cepage_stack_retrain_github_repository": "acme/cepage",
        "cepage_stack_prediction_log_exclude": ["proline", "hue"],
        "cepage_stack_prediction_log_sample": "0.5",
    }
    return render(tmp_path_factory.mktemp("render-trigger"), vault, "-e", json.dumps(settings))


def settings(rendered: Path, host: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((rendered / f"{host}.json").read_text())
    return body


def env(rendered: Path, host: str) -> dict[str, str]:
    values = {}
    for line in (rendered / f"{host}.env").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value.strip("'")
    return values


def test_service_instances_run_the_api_ui_and_proxy_on_the_private_network(
    rendered: Path,
) -> None:
    for name, host in SERVICE_HOSTS.items():
        derived = settings(rendered, name)
        assert derived["single_host"] is False
        assert derived["services"] == ["service", "ui", "proxy"]
        assert derived["bind_address"] == host["private_ip"]  # the load balancer's side only
        values = env(rendered, name)
        assert values["CEPAGE_BIND_ADDRESS"] == host["private_ip"]
        assert values["CEPAGE_DOMAIN"] == "ml.example.org"
        assert values["CEPAGE_TRUSTED_PROXIES"] == "172.16.32.0/22"
        assert values["CEPAGE_SITE_SCHEME"] == "http://"  # TLS ends at the load balancer
        assert values["CEPAGE_IMAGE_PREFIX"] == "rg.fr-par.scw.cloud/cepage-prod"


def test_control_instance_runs_mlflow_and_monitoring_against_the_managed_database(
    rendered: Path,
) -> None:
    derived = settings(rendered, CONTROL)
    assert "postgres" not in derived["services"]  # the managed database replaces it
    assert {"mlflow", "prometheus", "grafana", "proxy"} <= set(derived["services"])
    assert "service" not in derived["services"]
    # Reached directly (operators' UIs), not through the load balancer: it keeps HTTPS.
    assert "CEPAGE_SITE_SCHEME" not in env(rendered, CONTROL)
    assert derived["bind_address"] == "0.0.0.0"
    values = env(rendered, CONTROL)
    # The password is URL-encoded into the URI; the driver is named (SQLAlchemy 2.1 would pick
    # psycopg 3 for a bare postgresql://, which the MLflow image does not have).
    assert values["MLFLOW_BACKEND_STORE_URI"] == (
        "postgresql+psycopg2://mlflow:db%2Fpass%3Afrom%40secret-manager@172.16.32.10:5432/mlflow"
        "?sslmode=require"
    )
    assert values["GRAFANA_ADMIN_PASSWORD"] == "grafana-from-secret-manager"
    assert values["GRAFANA_ROOT_URL"] == "https://grafana.ml.example.org"
    assert derived["backup_pg_mode"] == "docker"
    assert derived["backup_pg_host"] == "172.16.32.10"
    assert derived["backup_pg_sslmode"] == "require"


def test_each_role_gets_its_own_key_and_the_admin_sites_stay_on_the_control_host(
    rendered: Path,
) -> None:
    """Security items 3 and 5: the hosts' key in every .env, the backup job's in its settings,
    the deployer's (the vault's) nowhere; the admin sites answer the admin ranges, on the control
    host only."""
    admins = " ".join(INVENTORY["vars"]["cepage_admin_cidrs"])
    for name in [*SERVICE_HOSTS, CONTROL]:
        values = env(rendered, name)
        assert values["AWS_ACCESS_KEY_ID"] == "SCWHOSTSFROMSECRETS1"
        hosts_secret = "hosts-from-secret-manager"  # pragma: allowlist secret
        assert values["AWS_SECRET_ACCESS_KEY"] == hosts_secret
        text = (rendered / f"{name}.env").read_text()
        assert "4a1b0c2d-0000-4000-8000-000000000001" not in text
        assert values["CEPAGE_ADMIN_CIDRS"] == admins
        derived = settings(rendered, name)
        assert derived["backup_s3_access_key"] == "SCWBACKUPFROMSECRET1"
        assert derived["backup_passphrase"] == "backup-from-secret-manager"
    for name in SERVICE_HOSTS:
        assert env(rendered, name)["CEPAGE_ADMIN_SITES"] == "off"
        assert "CEPAGE_APP_SITES" not in env(rendered, name)
    assert "CEPAGE_ADMIN_SITES" not in env(rendered, CONTROL)
    # The control host serves no public site: it never asks for the balancer's names' certificates.
    assert env(rendered, CONTROL)["CEPAGE_APP_SITES"] == "off"


def test_prometheus_scrapes_every_host(rendered: Path) -> None:
    targets = {t["name"]: t for t in settings(rendered, CONTROL)["targets"]}
    every_host = [h["private_ip"] for h in SERVICE_HOSTS.values()] + ["172.16.32.4"]
    assert sorted(targets["node"]["targets"]) == sorted(f"{ip}:9100" for ip in every_host)
    # Every replica of every service instance, on its own private port (docker-compose.metrics.yml).
    assert sorted(targets["service"]["targets"]) == sorted(
        f"{h['private_ip']}:{3000 + i}" for h in SERVICE_HOSTS.values() for i in range(REPLICAS)
    )
    for name in SERVICE_HOSTS:
        assert "docker-compose.metrics.yml" in settings(rendered, name)["compose_files"]
        assert env(rendered, name)["CEPAGE_SERVICE_METRICS_PORTS"] == f"3000-{3000 + REPLICAS - 1}"
    assert "docker-compose.metrics.yml" not in settings(rendered, CONTROL)["compose_files"]


def test_shared_values_reach_every_role_from_one_home(rendered: Path) -> None:
    """The stack, monitoring and backup roles get the same directory, compose project, database
    password and PostgreSQL image, each defined once (playbooks/group_vars/all, the compose file,
    Secret Manager), never copied into a role."""
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    for name in [*SERVICE_HOSTS, CONTROL]:
        derived = settings(rendered, name)
        assert derived["stack_dir"] == derived["monitoring_stack_dir"] == "/opt/cepage"
        assert derived["backup_compose_dir"] == derived["stack_dir"] + "/compose"
        assert set(derived["monitoring_compose_files"]) <= set(derived["compose_files"])
        assert derived["backup_pg_image"] == compose["services"]["postgres"]["image"]
        assert derived["backup_pg_password"] == "db/pass:from@secret-manager"
        assert derived["docker_data_root"] == (
            "/srv/cepage-data/docker" if name == CONTROL else "/var/lib/docker"
        )
    assert env(rendered, CONTROL)["POSTGRES_PASSWORD"] == "db/pass:from@secret-manager"


def test_env_carries_only_the_settings_an_environment_gives(rendered: Path) -> None:
    """Defaults live in their one home (bento/settings.py, the compose file): .env carries a
    setting only when the inventory gives it, and no port that no deployment reads."""
    for name in [*SERVICE_HOSTS, CONTROL]:
        values = env(rendered, name)
        assert values["CEPAGE_MAX_RECORDS"] == MAX_RECORDS
        for unset in ("CEPAGE_MODEL_NAME", "PROMETHEUS_RETENTION", "MLFLOW_WORKERS",
                      "CEPAGE_PROXY_USER", "GRAFANA_ADMIN_USER"):  # fmt: skip
            assert unset not in values, (name, unset)
        assert not [k for k in values if k.endswith("_PORT") and k not in (
            "CEPAGE_HTTP_PORT", "CEPAGE_HTTPS_PORT")], values  # fmt: skip


def test_every_host_running_the_service_keeps_the_production_log(rendered: Path) -> None:
    """The service writes to a host directory owned by its image's user (no egress for it); the
    host's timer moves the files to the environment's bucket with the hosts' key. The control
    instance, which runs no service here, keeps no log."""
    dockerfile = (ROOT / "compose" / "service" / "Dockerfile").read_text()
    assert "\nUSER 1034:1034\n" in dockerfile
    for name in SERVICE_HOSTS:
        derived = settings(rendered, name)
        assert derived["production_log_enabled"] is True
        assert derived["production_log_dir"] == "/var/lib/cepage/production"
        assert derived["production_log_owner"] == 1034
        assert derived["production_log_destination"] == (
            "production:cepage-prod-production-log/production"
        )
        assert derived["production_log_s3_access_key"] == "SCWHOSTSFROMSECRETS1"
        assert "docker-compose.production-log.yml" in derived["compose_files"]
        values = env(rendered, name)
        assert values["CEPAGE_PREDICTION_LOG_DIR"] == "/var/lib/cepage/production"
        # Privacy and sampling: the service's defaults unless the environment gives them.
        assert "CEPAGE_PREDICTION_LOG_EXCLUDE" not in values
        assert "CEPAGE_PREDICTION_LOG_SAMPLE" not in values
    control = settings(rendered, CONTROL)
    assert control["production_log_enabled"] is False
    assert "docker-compose.production-log.yml" not in control["compose_files"]
    assert "CEPAGE_PREDICTION_LOG_DIR" not in env(rendered, CONTROL)


def test_without_a_github_token_the_retrain_trigger_is_not_deployed(rendered: Path) -> None:
    for name in [*SERVICE_HOSTS, CONTROL]:
        derived = settings(rendered, name)
        assert derived["retrain_trigger"] is False
        assert "retrain-trigger" not in derived["services"]
        assert "docker-compose.retrain-trigger.yml" not in derived["compose_files"]
        assert not [k for k in env(rendered, name) if "TRIGGER" in k or "RETRAIN" in k]


def test_the_retrain_trigger_runs_on_the_control_host_with_its_tokens_as_files(
    rendered_with_trigger: Path,
) -> None:
    """With the GitHub token in the vault, the control host runs `retrain-trigger` and
    Alertmanager routes to it (compose/docker-compose.retrain-trigger.yml); the tokens reach the
    containers as Docker secrets (files), never through .env."""
    control = settings(rendered_with_trigger, CONTROL)
    assert control["retrain_trigger"] is True
    assert "retrain-trigger" in control["services"]
    assert "docker-compose.retrain-trigger.yml" in control["compose_files"]
    values = env(rendered_with_trigger, CONTROL)
    assert values["CEPAGE_TRIGGER_GITHUB_REPOSITORY"] == "acme/cepage"
    assert (
        values["CEPAGE_RETRAIN_GITHUB_TOKEN_SECRET"] == "/opt/cepage/secrets/retrain-github-token"
    )
    assert values["CEPAGE_RETRAIN_WEBHOOK_TOKEN_SECRET"] == (
        "/opt/cepage/secrets/retrain-webhook-token"
    )
    for name in [*SERVICE_HOSTS, CONTROL]:
        text = (rendered_with_trigger / f"{name}.env").read_text()
        assert GITHUB_TOKEN not in text and WEBHOOK_TOKEN not in text, name
    for name in SERVICE_HOSTS:
        derived = settings(rendered_with_trigger, name)
        assert derived["retrain_trigger"] is False
        assert "docker-compose.retrain-trigger.yml" not in derived["compose_files"]
        values = env(rendered_with_trigger, name)
        assert values["CEPAGE_PREDICTION_LOG_EXCLUDE"] == "proline,hue"
        assert values["CEPAGE_PREDICTION_LOG_SAMPLE"] == "0.5"


def test_prod_pins_our_images_by_digest_and_upgrades_the_engine(rendered: Path) -> None:
    """Prod refuses a new tag without the digest of each image compose builds; a digest reaches
    .env as the suffix the prod compose file appends to the image; every deploy upgrades Docker
    Engine (unattended-upgrades leaves it alone)."""
    names = subprocess.run(
        ["bash", str(ROOT / "scripts" / "images.sh"), "names"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    (play,) = yaml.safe_load((HERE / "render-hosts.yml").read_text())
    pinned = play["vars"]["cepage_stack_deploy_digests"]
    for name in [*SERVICE_HOSTS, CONTROL]:
        derived = settings(rendered, name)
        assert derived["require_image_digests"] is True
        assert derived["pinned_images"] == sorted(names)
        assert derived["docker_package_state"] == "latest"
        values = env(rendered, name)
        assert values["CEPAGE_SERVICE_DIGEST"] == f"@{pinned['service']}"
        assert [k for k in values if k.endswith("_DIGEST")] == ["CEPAGE_SERVICE_DIGEST"]


# --- SSH: the bastion, the host firewall, how Ansible reaches each host ---------------------------

ACCESS_PLAY = """\
- name: Each host's firewall and SSH connection settings, rendered locally
  hosts: all
  gather_facts: false
  connection: local
  vars_files:
    - {root}/playbooks/roles/cepage_common/defaults/main.yml
    - {root}/playbooks/group_vars/all/main.yml
  tasks:
    - name: The host firewall
      ansible.builtin.template:
        src: {root}/playbooks/roles/cepage_common/templates/cepage.nft.j2
        dest: "{{{{ render_dir }}}}/{{{{ inventory_hostname }}}}.nft"
        mode: "0644"
      delegate_to: localhost
    - name: How Ansible connects
      ansible.builtin.copy:
        content: >-
          {{{{ {{'bastion': cepage_common_ssh_bastion | bool,
                'ssh_args': ansible_ssh_common_args}} | to_json }}}}
        dest: "{{{{ render_dir }}}}/{{{{ inventory_hostname }}}}.ssh.json"
        mode: "0644"
      delegate_to: localhost
"""


def render_access(out: Path, inventory: str, *extra: str) -> Path:
    play = out / "access.yml"
    play.write_text(ACCESS_PLAY.format(root=ROOT))
    done = subprocess.run(
        [tool("ansible-playbook"), "-i", str(HERE / inventory), "-e", f"render_dir={out}",
         *extra, str(play)],
        cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    return out


def ssh_rules(nft: str) -> list[str]:
    return [line.strip() for line in nft.splitlines() if "dport 22 " in line]


@pytest.mark.parametrize("via_bastion", [False, True], ids=["direct", "via-bastion"])
def test_only_the_bastion_takes_ssh_from_anywhere_and_ci_jumps_through_it(
    tmp_path: Path, via_bastion: bool
) -> None:
    """The control host is the bastion: its security group is SSH's only allow-list (opened to a
    CI runner for a run), so its firewall accepts port 22 from any source; service hosts keep SSH
    to the admin ranges (and the private network). With CEPAGE_SSH_VIA_BASTION=1 (deploy.sh:
    ``cepage_ssh_via_bastion=true``), Ansible reaches service hosts at their private address with
    ProxyJump through the bastion's public address, checking their host key under their public
    address; the bastion itself, and every host by default, directly."""
    extra = ["-e", "cepage_ssh_via_bastion=true"] if via_bastion else []
    out = render_access(tmp_path, "terraform-inventory.prod.json", *extra)
    admin = INVENTORY["vars"]["cepage_admin_cidrs"][0]
    control_ip = INVENTORY["children"]["control"]["hosts"][CONTROL]["ansible_host"]
    control = (out / f"{CONTROL}.nft").read_text()
    assert ssh_rules(control) == ["tcp dport 22 accept"]
    assert "This host is the bastion" in control
    assert json.loads((out / f"{CONTROL}.ssh.json").read_text()) == {
        "bastion": True, "ssh_args": ""}  # fmt: skip
    for name, host in SERVICE_HOSTS.items():
        nft = (out / f"{name}.nft").read_text()
        assert ssh_rules(nft) == [f"ip saddr {admin} tcp dport 22 accept"], name
        assert f"ip saddr {INVENTORY['vars']['cepage_private_network_cidr']} accept" in nft
        assert "bastion" not in nft
        ssh = json.loads((out / f"{name}.ssh.json").read_text())
        assert ssh["bastion"] is False
        expected = (
            f"-o ProxyJump=cepage@{control_ip} -o HostName={host['private_ip']}"
            f" -o HostKeyAlias={host['ansible_host']}"
        )
        assert ssh["ssh_args"] == (expected if via_bastion else ""), name


def test_the_single_dev_host_is_its_own_bastion(tmp_path: Path) -> None:
    out = render_access(tmp_path, "terraform-inventory.dev.json", "-e", "cepage_ssh_via_bastion=1")
    (host,) = {p.name.split(".")[0] for p in out.glob("*.nft")}
    assert ssh_rules((out / f"{host}.nft").read_text()) == ["tcp dport 22 accept"]
    assert json.loads((out / f"{host}.ssh.json").read_text()) == {"bastion": True, "ssh_args": ""}
