"""The compose stack's scrape targets: Prometheus' own DNS discovery, one target per replica.

monitoring/prometheus/prometheus.yml gives each job a compose service name (dns_sd, type A) beside
its file_sd file; here the compose file itself runs, in the private engine, with stand-ins for
the images that cannot be pulled: Debian's Prometheus (the host's binary on the local base image)
and a few-line metrics server as the model service. Scaling the service up and down must change
Prometheus' targets, one per replica, each scraped on its own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.docker.conftest import Docker, assert_hardened, compose_env
from tests.docker.test_config import BASE, SECRETS, rendered
from tests.support.procs import ROOT, free_port, require, require_binary

pytestmark = pytest.mark.docker

PROMETHEUS = ROOT / "monitoring" / "prometheus"

# The model service stand-in: /metrics names the replica (its container's hostname).
REPLICA = """
import http.server, socket
class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f'cepage_replica_info{{hostname="{socket.gethostname()}"}} 1\\n'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("", 3000), Metrics).serve_forever()
"""

# The MLflow stand-in: MLflow 3's allowed-hosts check (a Host header matching none of the
# patterns gets 403), then one metric.
MLFLOW = """
import fnmatch, http.server, os
ALLOWED = os.environ["ALLOWED"].split(",")
class Mlflow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        allowed = any(fnmatch.fnmatch(self.headers.get("Host", ""), p) for p in ALLOWED)
        self.send_response(200 if allowed else 403)
        self.end_headers()
        self.wfile.write(b"mlflow_up 1\\n" if allowed else b"Invalid Host header")
http.server.ThreadingHTTPServer(("", 5000), Mlflow).serve_forever()
"""


def mlflow_allowed_hosts() -> str:
    """MLFLOW_ALLOWED_HOSTS' default, from compose/mlflow/entrypoint.sh (its one home)."""
    entrypoint = (ROOT / "compose" / "mlflow" / "entrypoint.sh").read_text()
    match = re.search(r'allowed="\$\{MLFLOW_ALLOWED_HOSTS:-([^}]+)\}"', entrypoint)
    assert match, "the entrypoint's default allowed hosts moved"
    return match.group(1)


def discovery() -> list[dict[str, Any]]:
    """Every scrape job, and the Alertmanager entry, of prometheus.yml."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    return [*config["scrape_configs"], *config["alerting"]["alertmanagers"]]


def test_every_job_has_a_target_file_and_a_compose_name() -> None:
    services = rendered(BASE)["services"]
    for job in discovery():
        name = job.get("job_name", "alertmanagers")
        (file_sd,) = job["file_sd_configs"]
        assert [Path(f).parent.name for f in file_sd["files"]] == ["targets"], name
        (dns_sd,) = job["dns_sd_configs"]
        assert dns_sd["type"] == "A" and isinstance(dns_sd["port"], int), name
        for host in dns_sd["names"]:
            # Fully qualified: never completed with a host's search domains outside Docker.
            assert host.endswith("."), (name, host)
            assert host.removesuffix(".") in services, (name, host)


def test_prometheus_mounts_its_folder_with_rules_and_targets() -> None:
    prometheus = rendered(BASE)["services"]["prometheus"]
    sources = {
        str(v["source"]) if isinstance(v, dict) else v.split(":")[0]: v
        for v in prometheus["volumes"]
    }
    assert str(PROMETHEUS) in sources, sources
    assert (PROMETHEUS / "targets").is_dir(), "watched by file_sd from the start"
    assert "prometheus-targets" not in rendered(BASE)["services"]


@pytest.fixture(scope="module")
def stand_ins(docker: Docker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus image from the host's Debian binary, on the local base image."""
    binary = require_binary("prometheus")
    context = tmp_path_factory.mktemp("prometheus-image")
    shutil.copy(binary, context / "prometheus")
    (context / "Dockerfile").write_text(
        'FROM python:3.11-slim\nCOPY prometheus /bin/prometheus\nENTRYPOINT ["/bin/prometheus"]\n'
    )
    tag = f"cepage-test/prometheus:{uuid.uuid4().hex[:8]}"
    docker.build(tag, str(context / "Dockerfile"), context)
    yield tag
    docker.run("rmi", tag, check=False)


class Stack:
    """docker-compose on the repo's base file plus the test's stand-ins, in the private engine."""

    def __init__(self, docker: Docker, override: Path, project: str) -> None:
        compose = shutil.which("docker-compose")
        require(compose is not None, "`docker-compose` is not installed (apt docker-compose)")
        self.docker = docker
        self.argv = [str(compose), "-f", str(BASE), "-f", str(override)]
        self.env = {
            **compose_env(**SECRETS, COMPOSE_PROJECT_NAME=project),
            "DOCKER_HOST": docker.env["DOCKER_HOST"],
        }

    def run(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.argv, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0 or not check, (
            f"docker-compose {' '.join(args)}:\n{done.stderr[-4000:]}"
        )
        return done

    def replicas(self) -> dict[str, str]:
        """hostname (container id prefix) -> address:3000 of every running service replica, on
        the monitoring network (the one it shares with Prometheus)."""
        addresses = {}
        for cid in self.run("ps", "-q", "service").stdout.split():
            info = self.docker.inspect(cid)
            networks = info["NetworkSettings"]["Networks"]
            (monitoring,) = (v for k, v in networks.items() if k.endswith("_monitoring"))
            addresses[info["Config"]["Hostname"]] = f"{monitoring['IPAddress']}:3000"
        return addresses


def scraped(prometheus: str, job: str) -> dict[str, str]:
    """address -> health of the job's active targets."""
    body = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()
    return {
        t["labels"]["instance"]: t["health"]
        for t in body["data"]["activeTargets"]
        if t["labels"]["job"] == job
    }


def replicas_seen(prometheus: str) -> dict[str, str]:
    """hostname -> instance of every replica whose own metrics Prometheus holds now."""
    result = requests.get(
        f"{prometheus}/api/v1/query", params={"query": "cepage_replica_info"}, timeout=5
    ).json()["data"]["result"]
    return {s["metric"]["hostname"]: s["metric"]["instance"] for s in result}


def converge(stack: Stack, prometheus: str, count: int, timeout: float = 90) -> dict[str, str]:
    """Wait until Prometheus scrapes exactly the running replicas, all up; return them."""
    deadline = time.monotonic() + timeout
    expected: dict[str, str] = {}
    while time.monotonic() < deadline:
        expected = stack.replicas()
        targets = scraped(prometheus, "cepage-service")
        if len(expected) == count and targets == dict.fromkeys(expected.values(), "up"):
            return expected
        time.sleep(2)
    raise AssertionError(
        f"want {count} replicas {expected}, Prometheus has {scraped(prometheus, 'cepage-service')}"
        f"\n{stack.run('logs', '--tail', '40', 'prometheus').stdout[-3000:]}"
    )


@pytest.mark.slow
def test_prometheus_scrapes_each_replica_found_by_dns(
    docker: Docker, stand_ins: str, tmp_path: Path
) -> None:
    port = free_port()
    override = tmp_path / "docker-compose.test.yml"
    override.write_text(
        json.dumps(
            {
                "services": {
                    "prometheus": {
                        "image": stand_ins,
                        "ports": [f"127.0.0.1:{port}:9090"],
                    },
                    "service": {
                        "image": "python:3.11-slim",
                        "command": ["python3", "-c", REPLICA],
                    },
                    "mlflow": {
                        "image": "python:3.11-slim",
                        "entrypoint": ["python3", "-c", MLFLOW],
                        "command": [],
                        "environment": {"ALLOWED": mlflow_allowed_hosts()},
                        "healthcheck": {"disable": True},
                    },
                }
            }
        )
    )
    stack = Stack(docker, override, f"cepagetargets{uuid.uuid4().hex[:8]}")
    prometheus = f"http://127.0.0.1:{port}"
    try:
        up = ("up", "-d", "--no-deps", "--no-build")
        stack.run(*up, "--scale", "service=2", "prometheus", "service")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{prometheus}/-/ready", timeout=3).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        two = converge(stack, prometheus, 2)
        # Each replica's own metrics, under its own address: not one name reaching either.
        deadline = time.monotonic() + 60
        while replicas_seen(prometheus) != two and time.monotonic() < deadline:
            time.sleep(2)
        assert replicas_seen(prometheus) == two

        # Both run with the compose file's hardening. The engine made the service's networks
        # (app, monitoring) internal: nothing they send leaves the host. Prometheus also has
        # `edge`, its way out to the other hosts' targets.
        (prometheus_id,) = stack.run("ps", "-q", "prometheus").stdout.split()
        replica = stack.run("ps", "-q", "service").stdout.split()[0]
        internal = {}
        for cid in (prometheus_id, replica):
            assert_hardened(stack.docker, cid)
            for network in stack.docker.inspect(cid)["NetworkSettings"]["Networks"]:
                internal[network] = stack.docker.inspect(network)["Internal"]
        project = stack.env["COMPOSE_PROJECT_NAME"]
        assert internal == {
            f"{project}_app": True,
            f"{project}_monitoring": True,
            f"{project}_edge": False,
        }, internal

        # Prometheus found itself by its compose name; what is not running gives no target
        # (and no failing one): MLflow, node-exporter and Alertmanager were not started here.
        # (A target found but not yet scraped is "unknown": its first scrape comes within the
        # global 15 s interval.)
        deadline = time.monotonic() + 60
        unscraped = {"unknown"}
        while time.monotonic() < deadline and unscraped & set(
            scraped(prometheus, "prometheus").values()
        ):
            time.sleep(2)
        assert list(scraped(prometheus, "prometheus").values()) == ["up"]
        for job in ("mlflow", "node", "alertmanager"):
            assert scraped(prometheus, job) == {}, job

        # MLflow, once it runs, is scraped under a name its allowed-hosts check accepts (the
        # stand-in applies the entrypoint's own default list, as MLflow 3 does): by address, the
        # scrape got 403 and the target stayed down in every deployed stack.
        stack.run(*up, "mlflow")
        deadline = time.monotonic() + 90  # the job's DNS refresh (30 s), then a scrape (15 s)
        while scraped(prometheus, "mlflow") != {"mlflow:5000": "up"}:
            assert time.monotonic() < deadline, scraped(prometheus, "mlflow")
            time.sleep(3)

        # Scaled up and down: the targets follow within the service job's refresh interval.
        stack.run(*up, "--scale", "service=3", "service")
        three = converge(stack, prometheus, 3)
        assert set(two) < set(three)
        stack.run(*up, "--scale", "service=1", "service")
        (one,) = converge(stack, prometheus, 1)
        assert one in three
    finally:
        stack.run("down", "-v", "--remove-orphans", timeout=120, check=False)
