"""The rehearsal's hosts: containers booting systemd with their own Docker engine, a registry.

What Terraform makes in Scaleway, made on one machine with the private Docker engine
(tests/tools/docker_engine.py): a user-defined network standing for the private network, one
container per instance (the prod layout: a control host and two service hosts; the dev layout:
one host running both), each booting systemd (tests/tools/rehearsal/host/Dockerfile) so the roles'
services run, with Docker's data root and the data volume's mount point on volumes of their own;
a real registry (Debian's docker-registry) on that network, which the hosts' engines also use as
a pull-through mirror of Docker Hub; and the inventory Terraform's ``ansible_inventory`` output
would give for those hosts, plus the connection Ansible uses to reach them
(``community.docker.docker_api``, as tests/ansible/test_apply.py does).

Not --privileged: the sandbox lacks CAP_SYS_RESOURCE, so every capability but that one is added
(and CAP_SYS_TIME is dropped too: chrony must never set this machine's clock), with seccomp,
AppArmor and the /proc, /sys masks off and the host's cgroups, which is what systemd and dockerd
need. Everything made here is named ``rehearsal-*``; ``Rehearsal.teardown`` removes the
containers, volumes, network and registry tags it made. Nothing runs at import time.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack.processes import ROOT

TOOLS = ROOT / "tests" / "tools"
HERE = TOOLS / "rehearsal"
CACHE = Path(os.environ.get("CEPAGE_CACHE", Path.home() / ".cache" / "cepage"))
APT_CACHE = CACHE / "apt-rehearsal"
BASE_IMAGE = "python:3.11-slim"  # tests/tools/base_image.py's BASE_TAG
COMPOSE_VERSION = "2.29.7"
COMPOSE_MODULE = "github.com/docker/compose/v2"
REGISTRY_ALIAS = "rehearsal-registry"
REGISTRY_PORT = 5000
STAND_IN_LABEL = "org.cepage.rehearsal.stand-in"
ADMIN_SITES = ("mlflow", "grafana", "prometheus", "alertmanager")
# `docker run` flags of a host (see the module docstring).
HOST_FLAGS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--cap-drop", "SYS_TIME",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
)  # fmt: skip


@dataclass(frozen=True)
class Docker:
    """The docker CLI against one engine (``env`` holds its DOCKER_HOST)."""

    env: Mapping[str, str] = field(repr=False)

    def run(
        self, *args: str, timeout: float = 300, check: bool = True, stdin_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["docker", *args], env=dict(self.env), input=stdin_text, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def has_image(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False).returncode == 0

    @property
    def host(self) -> str:
        return self.env.get("DOCKER_HOST", "unix:///var/run/docker.sock")


# --- images ------------------------------------------------------------------------------------


def compose_plugin() -> Path:
    """``docker compose`` v2, built from source by tests/tools/go-tool.sh (cached; cold ~2 min)."""
    ldflags = f"-X {COMPOSE_MODULE}/internal.Version=v{COMPOSE_VERSION}"
    done = subprocess.run(
        ["bash", str(TOOLS / "go-tool.sh"), "docker-compose", COMPOSE_MODULE, COMPOSE_VERSION,
         "./cmd", ldflags],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"building docker compose v2 failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def caddy_binary() -> Path:
    """Caddy with the rate-limit module, built from source by tests/tools/caddy.sh (cached)."""
    done = subprocess.run(
        ["bash", str(TOOLS / "caddy.sh")], capture_output=True, text=True, timeout=1800,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"building Caddy failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def tree_hash(directory: Path, extra: Mapping[str, Path] = {}) -> str:
    """A short hash of a build context: its files and the extra files copied into it."""
    digest = hashlib.sha256()
    files = {p.relative_to(directory).as_posix(): p for p in directory.rglob("*") if p.is_file()}
    for name, path in sorted({**files, **extra}.items()):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def build_cached(
    docker: Docker, name: str, extra: Mapping[str, Path] = {}, base: str = BASE_IMAGE
) -> str:
    """Build tests/tools/rehearsal/NAME (plus ``extra`` files) as rehearsal-NAME:HASH, once."""
    context = HERE / name
    base_id = docker.run("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    tag = f"rehearsal-{name}:{tree_hash(context, extra)}-{base_id.split(':')[-1][:8]}"
    if docker.has_image(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="rehearsal-build-") as tmp:
        shutil.copytree(context, tmp, dirs_exist_ok=True)
        for target, source in extra.items():
            shutil.copy2(source, Path(tmp) / target)
        docker.run("build", "-q", "--build-arg", f"BASE_IMAGE={base}", "-t", tag, tmp,
                   timeout=1800)  # fmt: skip
    # The builds of earlier versions of this context go (their layers stay in the build cache).
    listed = docker.run("images", "--format", "{{.Repository}}:{{.Tag}}", f"rehearsal-{name}")
    for old in set(listed.stdout.split()) - {tag}:
        docker.run("rmi", old, check=False)
    return tag


def host_image(docker: Docker) -> str:
    """The host image (systemd, sudo, the admin user, the compose v2 plugin)."""
    return build_cached(docker, "host", {"docker-compose": compose_plugin()})


# The stand-ins by upstream repository (tests/tools/rehearsal/NAME), built only when a pull fails.
STAND_INS = {
    "postgres": "postgres",
    "prom/prometheus": "prometheus",
    "prom/alertmanager": "alertmanager",
    "grafana/grafana": "grafana",
}


@dataclass(frozen=True)
class Upstream:
    """An upstream image the stack needs and what the rehearsal runs for it."""

    ref: str
    """The name compose uses (postgres:17.12-bookworm)."""
    local: str
    """The image in the engine: the pulled upstream one, or a stand-in (rehearsal-NAME:HASH)."""
    source: str
    """``pulled`` (the real image), ``local`` (already in the engine: the suite's base image) or
    ``stand-in: WHAT`` (the image's stand-in label)."""


def repository(ref: str) -> str:
    return ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref


def upstream(docker: Docker, ref: str, extra: Mapping[str, Path] = {}) -> Upstream:
    """``ref`` pulled when it can be; else its stand-in, built on the suite's base image."""
    if ref == BASE_IMAGE:  # the suite's own base (pulled, or made by tests/tools/base_image.py)
        return Upstream(ref, ref, "local")
    pulled = docker.run("pull", "-q", ref, timeout=180, check=False)
    if pulled.returncode == 0:
        return Upstream(ref, ref, "pulled")
    name = repository(ref)
    if name == "caddy":
        name = "caddy-builder" if "-builder" in ref else "caddy"
    else:
        name = STAND_INS[name]
    local = build_cached(docker, name, extra)
    label = docker.run(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{STAND_IN_LABEL}"}}}}', local
    ).stdout.strip()
    return Upstream(ref, local, f"stand-in: {label}")


# --- the network, the registry, the hosts ------------------------------------------------------


@dataclass(frozen=True)
class HostSpec:
    """One instance of a layout, as Terraform names and roles it."""

    name: str
    roles: tuple[str, ...]
    keeps_state: bool
    """The host with the Block Storage data volume (Terraform's data_volume): the control host."""


LAYOUTS: dict[str, tuple[HostSpec, ...]] = {
    "dev": (HostSpec("cepage-dev-service-1", ("service", "control"), True),),
    "prod": (
        HostSpec("cepage-prod-control", ("control",), True),
        HostSpec("cepage-prod-service-1", ("service",), False),
        HostSpec("cepage-prod-service-2", ("service",), False),
    ),
}


@dataclass(frozen=True)
class Host:
    spec: HostSpec
    container: str
    ip: str
    ports: dict[int, int]
    """The host's port -> the port published on 127.0.0.1 of this machine (80, 443)."""


@dataclass(frozen=True)
class Registry:
    container: str
    push: str
    """Where this machine's engine pushes (127.0.0.1:PORT: trusted as insecure by default)."""
    pull: str
    """Where the hosts pull from (rehearsal-registry:5000 on the rehearsal's network)."""


@dataclass
class Rehearsal:
    """Everything one rehearsal made; ``teardown`` removes it."""

    docker: Docker
    run_id: str
    layout: str
    network: str = ""
    subnet: str = ""
    gateway: str = ""
    registry: Registry | None = None
    hosts: list[Host] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)

    def name(self, suffix: str) -> str:
        return f"rehearsal-{self.run_id}-{suffix}"

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.spec.name == name)

    def teardown(self) -> None:
        for container in reversed(self.containers):
            self.docker.run("rm", "-f", "-v", container, check=False, timeout=120)
        if self.network:
            self.docker.run("network", "rm", self.network, check=False)
        for volume in self.volumes:
            self.docker.run("volume", "rm", "-f", volume, check=False)
        for ref in self.pushed:  # only the tags: the images stay in the layer cache
            self.docker.run("rmi", ref, check=False)


def start_network(rehearsal: Rehearsal) -> None:
    """The private network: a user-defined bridge, its subnet and gateway."""
    name = rehearsal.name("net")
    rehearsal.docker.run("network", "create", name)
    rehearsal.network = name
    ipam = json.loads(rehearsal.docker.run("network", "inspect", name).stdout)[0]["IPAM"]
    rehearsal.subnet = ipam["Config"][0]["Subnet"]
    rehearsal.gateway = ipam["Config"][0].get("Gateway") or str(
        next(ipaddress.ip_network(rehearsal.subnet).hosts())
    )


def wait_http(url: str, timeout: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout} s")
        time.sleep(0.5)


def start_registry(rehearsal: Rehearsal) -> Registry:
    """Debian's docker-registry on the network (alias rehearsal-registry), on 127.0.0.1 too."""
    docker = rehearsal.docker
    image = build_cached(docker, "registry")
    name, volume = rehearsal.name("registry"), rehearsal.name("registry-data")
    rehearsal.volumes.append(volume)
    rehearsal.containers.append(name)
    docker.run(
        "run", "-d", "--name", name, "--network", rehearsal.network,
        "--network-alias", REGISTRY_ALIAS, "-p", f"127.0.0.1::{REGISTRY_PORT}",
        "-v", f"{volume}:/var/lib/docker-registry", image,
    )  # fmt: skip
    port = published(docker, name, REGISTRY_PORT)
    wait_http(f"http://127.0.0.1:{port}/v2/", timeout=30)
    registry = Registry(name, f"127.0.0.1:{port}", f"{REGISTRY_ALIAS}:{REGISTRY_PORT}")
    rehearsal.registry = registry
    return registry


def published(docker: Docker, container: str, port: int) -> int:
    """The 127.0.0.1 port a container's ``port`` is published on."""
    out = docker.run("port", container, f"{port}/tcp").stdout.split()[0]
    return int(out.rsplit(":", 1)[1])


def push(rehearsal: Rehearsal, local: str, name: str) -> str:
    """Push the engine's image ``local`` to the registry as NAME (repository:tag)."""
    assert rehearsal.registry is not None
    ref = f"{rehearsal.registry.push}/{name}"
    rehearsal.docker.run("tag", local, ref)
    rehearsal.pushed.append(ref)
    rehearsal.docker.run("push", ref, timeout=1200)
    return ref


def mirror_name(ref: str) -> str:
    """The name a Docker Hub image has in a mirror (library/ for official images)."""
    return ref if "/" in repository(ref) else f"library/{ref}"


def start_host(rehearsal: Rehearsal, spec: HostSpec, image: str) -> Host:
    """A container of the host image, booted (systemd running), on the rehearsal's network."""
    docker = rehearsal.docker
    name = rehearsal.name(spec.name)
    # Downloaded packages kept between runs, one folder per host name: apt locks the folder, so
    # it is never shared with another container that may run apt at the same time.
    apt_cache = APT_CACHE / spec.name
    apt_cache.mkdir(parents=True, exist_ok=True)
    volumes = {"docker": "/var/lib/docker", "data": "/srv/cepage-data"}
    argv = ["run", "-d", "--name", name, "--hostname", spec.name, "--network", rehearsal.network,
            *HOST_FLAGS, "-p", "127.0.0.1::80", "-p", "127.0.0.1::443",
            "-v", f"{apt_cache}:/var/cache/apt/archives"]  # fmt: skip
    for suffix, path in volumes.items():
        volume = rehearsal.name(f"{spec.name}-{suffix}")
        rehearsal.volumes.append(volume)
        argv += ["-v", f"{volume}:{path}"]
    rehearsal.containers.append(name)
    docker.run(*argv, image)
    wait_booted(docker, name)
    ip = json.loads(docker.run("inspect", name).stdout)[0]["NetworkSettings"]["Networks"][
        rehearsal.network
    ]["IPAddress"]
    ports = {port: published(docker, name, port) for port in (80, 443)}
    host = Host(spec=spec, container=name, ip=ip, ports=ports)
    rehearsal.hosts.append(host)
    return host


def wait_booted(docker: Docker, container: str, timeout: float = 180) -> None:
    """Until systemd reports the boot finished (``running``, or ``degraded``: a unit failed)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        # Before systemd's bus is up this prints nothing, or "offline" ("Failed to connect to
        # bus": systemd has not opened its socket yet, which a slow first boot showed), and
        # fails: ask again until the deadline. Any other state is final.
        done = docker.run(
            "exec", container, "systemctl", "is-system-running", "--wait", check=False,
            timeout=timeout,
        )  # fmt: skip
        state = done.stdout.strip()
        if state in ("running", "degraded"):
            return
        if state not in ("", "offline", "initializing", "starting"):
            break
        time.sleep(1)
    failed = docker.run("exec", container, "systemctl", "--failed", "--no-legend", check=False)
    raise RuntimeError(f"{container}: systemd is {state!r}:\n{failed.stdout}{failed.stderr}")


def start(docker: Docker, layout: str) -> Rehearsal:
    """The network, the registry and the layout's hosts (torn down if any step fails)."""
    rehearsal = Rehearsal(docker=docker, run_id=uuid.uuid4().hex[:6], layout=layout)
    try:
        image = host_image(docker)
        start_network(rehearsal)
        start_registry(rehearsal)
        for spec in LAYOUTS[layout]:
            start_host(rehearsal, spec, image)
    except BaseException:
        rehearsal.teardown()
        raise
    return rehearsal


# --- the inventory ------------------------------------------------------------------------------


def inventory(rehearsal: Rehearsal, domain: str, admin_cidrs: Sequence[str]) -> dict[str, Any]:
    """What ``terraform output -json ansible_inventory`` gives for these hosts (iac/outputs.tf).

    The rehearsal's network is the private network and each host's address on it stands for its
    public IP too; the registry is the local one; ``domain`` is the environment's domain name
    (a ``.internal`` one gets certificates from the proxy's own CA).
    """
    assert rehearsal.registry is not None
    env = rehearsal.layout
    control = next(h for h in rehearsal.hosts if "control" in h.spec.roles)
    service_hosts = [h for h in rehearsal.hosts if "service" in h.spec.roles]
    high_availability = len(service_hosts) > 1
    hostvars: dict[str, dict[str, Any]] = {
        h.spec.name: {
            "ansible_host": h.ip,
            "private_ip": h.ip,
            "cepage_roles": list(h.spec.roles),
            "data_volume": f"fr-par-1/{uuid.uuid5(uuid.NAMESPACE_DNS, h.spec.name)}"
            if h.spec.keeps_state
            else None,
        }
        for h in rehearsal.hosts
    }
    stack_vars = {
        "cepage_environment": env,
        "cepage_region": "fr-par",
        "cepage_base_url": f"https://{domain}",
        "cepage_domain_name": domain,
        "cepage_admin_domain_name": domain,
        "cepage_ports": {"api": 3000, "http": 80, "https": 443},
        "cepage_health_check_path": "/readyz",
        "cepage_tls_termination": "load_balancer" if high_availability else "proxy",
        "cepage_hostnames": {
            "service": [domain, f"api.{domain}"],
            "control": [f"{site}.{domain}" for site in ADMIN_SITES],
        },
        "cepage_registry_endpoint": f"{rehearsal.registry.pull}/cepage-{env}",
        "cepage_s3_endpoint": "http://rehearsal-s3:9000",
        "cepage_buckets": {
            "mlflow_artifacts": f"cepage-{env}-mlflow-artifacts",
            "backups": f"cepage-{env}-backups",
            "production_log": f"cepage-{env}-production-log",
        },
        "cepage_secret_ids": {},
        "cepage_database": None,
        "cepage_control_private_ip": control.ip,
        "cepage_admin_cidrs": list(admin_cidrs),
        "cepage_private_network_cidr": rehearsal.subnet,
        "cepage_backup_retention_days": 14,
        "cepage_api_key_secret_ids": {},
        "ansible_user": "cepage",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    return {
        "all": {
            "vars": stack_vars,
            "children": {
                role: {"hosts": {n: v for n, v in hostvars.items() if role in v["cepage_roles"]}}
                for role in ("service", "control")
            },
        }
    }


def connection_inventory(rehearsal: Rehearsal) -> dict[str, Any]:
    """How Ansible reaches the hosts: the docker_api connection to each host's container."""
    return {
        "all": {
            "vars": {
                "ansible_connection": "community.docker.docker_api",
                "ansible_docker_docker_host": rehearsal.docker.host,
            },
            "hosts": {h.spec.name: {"ansible_docker_host": h.container} for h in rehearsal.hosts},
        }
    }
