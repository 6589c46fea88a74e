"""The rehearsal's prod layout with services on: checks 2, 3 and 5 of issue 13.

A control host and two service hosts (systemd, their own Docker engine), a load balancer in front
of the service hosts (HAProxy configured from iac/lb.tf's values: tests/rehearsal/lb.py), the
local registry, and `make deploy`'s path (playbooks/deploy.sh) as the release workflow runs it
for prod: a tag and the digests of its images (scripts/images.sh digests). Then:

* Prometheus on the control host scrapes every API replica of every service host, and stopping a
  replica fires CepageServiceDown, which reaches Alertmanager (check 2);
* while a load generator sends predictions through the balancer the whole time: a deploy of a
  broken image fails its health check on the first host and stops there, the other host keeps
  serving v1; `make rollback` brings v1 back; a rolling deploy takes every host from v1 to v2, and
  the smoke test passes (check 3);
* a killed service host: the balancer stops sending to it, and the requests that fail are only
  those before it notices (check 5).

Time: ~30 min on 2 cores (the first deploy ~10 min, each deploy after it 3-6 min: the output
of `make test` lists the slowest tests). Figures (requests and failures of each deploy, each
host's time out of the balancer) are printed in the run's summary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.conftest import Run
from tests.docker.conftest import Images
from tests.rehearsal import deploy, hosts, lb, web
from tests.rehearsal import images as pushing
from tests.rehearsal.conftest import FIGURES, UPSTREAM_REPORT, started
from tests.rehearsal.load import Load, Report
from tests.support.procs import ROOT, require_binary

# The module fixture's first deploy takes ~10-14 min on 2 cores (818 s of setup in a CI run):
# pytest's default 900 s per test would stop it on a slower day.
pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.timeout(1800)]

V1, V2, BROKEN = "rehearsal-v1", "rehearsal-v2", "rehearsal-broken"
CONTROL = "cepage-prod-control"
SERVICE_HOSTS = ("cepage-prod-service-1", "cepage-prod-service-2")
HEALTH_CHECK_PATH = "/readyz"  # the inventory's cepage_health_check_path (iac/variables.tf)


@dataclass
class Prod:
    rehearsal: hosts.Rehearsal
    deployer: deploy.Deployer
    balancer: lb.LoadBalancer
    control_ca: str
    """The control host's proxy CA (PEM): its admin sites' certificates."""
    digests: dict[str, Path]
    record: dict[str, Any]
    first: Run
    directory: Path
    figures: list[str] = field(default_factory=list)

    def sh(self, host: str, script: str, check: bool = True) -> str:
        container = self.rehearsal.host(host).container
        return self.rehearsal.docker.run("exec", container, "sh", "-c", script, check=check).stdout

    def admin(self, site: str, path: str) -> web.Response:
        """An admin site of the control host (prometheus., alertmanager.) with the operator's
        password, through its proxy's 443."""
        return web.request(
            f"{site}.{deploy.DOMAIN}",
            self.rehearsal.host(CONTROL).ports[443],
            path,
            self.control_ca,
            auth=(deploy.PROXY_USER, deploy.PROXY_PASSWORD),
        )

    def load(self) -> Load:
        return Load(f"api.{deploy.DOMAIN}", self.balancer.https_port, self.balancer.ca, self.record)

    def service_images(self, host: str) -> list[str]:
        """The image reference each API replica of ``host`` runs (registry/...:TAG@DIGEST)."""
        # The reference the container was created from (`docker ps` shortens it to the tag).
        out = self.sh(
            host,
            "docker inspect --format '{{.Config.Image}}' "
            "$(docker ps -q --filter label=com.docker.compose.service=service)",
        )
        return sorted(out.split())

    def digest(self, tag: str) -> str:
        digest: str = json.loads(self.digests[tag].read_text())["service"]
        return digest


def service_probe() -> str:
    """The health probe of the service image (its Dockerfile's HEALTHCHECK CMD, exec form)."""
    dockerfile = (ROOT / "compose" / "service" / "Dockerfile").read_text()
    match = re.search(r"^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert match, "no HEALTHCHECK ... CMD [...] in compose/service/Dockerfile"
    return match.group(1)


def expected_image(prod: Prod, tag: str) -> str:
    assert prod.rehearsal.registry is not None
    return f"{prod.rehearsal.registry.pull}/cepage-prod/service:{tag}@{prod.digest(tag)}"


@pytest.fixture(scope="module")
def prod(
    engine: hosts.Docker,
    host_image: str,
    images: Images,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Prod]:
    require_binary("openssl")  # the balancer's certificate
    require_binary("skopeo")  # scripts/images.sh digests
    base = tmp_path_factory.mktemp("rehearsal-prod")
    with started(engine, "prod", host_image) as rehearsal:
        pushed = pushing.push_all(rehearsal, images.all(), V1)
        UPSTREAM_REPORT[:] = [f"  {u.ref}: {u.source}" for u in pushed.upstream]
        # v2: a new release of the service (a new image, so new digests); broken: one whose API
        # starts but never gets ready, so its health check fails.
        service = pushed.local["service"]
        releases = {
            V2: pushing.derived(rehearsal, service, V2, "LABEL org.cepage.rehearsal.release=v2"),
            BROKEN: pushing.derived(
                rehearsal,
                service,
                BROKEN,
                "LABEL org.cepage.rehearsal.release=broken",
                'ENTRYPOINT ["sleep"]',
                'CMD ["infinity"]',
                # The image's own probe, on a shorter clock: unhealthy after ~15 s instead of
                # its 60 s start period and three 10 s retries, which only waited (~75 s of CI).
                f"HEALTHCHECK --interval=3s --timeout=2s --start-period=5s --retries=3 CMD "
                f"{service_probe()}",
            ),
        }
        for tag, image in releases.items():
            pushing.push_release(rehearsal, {**pushed.local, "service": image}, tag)
        digests = {
            tag: pushing.digests(rehearsal, tag, base / f"digests-{tag}.json")
            for tag in (V1, V2, BROKEN)
        }
        # Terraform makes the balancer before the instances are configured.
        balancer = lb.start(rehearsal, base / "lb", deploy.DOMAIN, HEALTH_CHECK_PATH, 80)
        deployer = deploy.prepare(rehearsal, base, V1, [rehearsal.subnet])
        first = deployer.deploy(tag=V1, digests=digests[V1])
        first.assert_ok()
        control = rehearsal.host(CONTROL)
        ca = rehearsal.docker.run(
            "exec", control.container, "docker", "exec", "cepage-proxy-1",
            "cat", "/data/caddy/pki/authorities/local/root.crt",
        ).stdout  # fmt: skip
        metadata = web.request(
            f"api.{deploy.DOMAIN}", balancer.https_port, "/metadata", balancer.ca
        ).json()
        record = {f["name"]: f["median"] for f in metadata["feature_schema"]["features"]}
        prod = Prod(rehearsal, deployer, balancer, ca, digests, record, first, base)
        yield prod
        FIGURES.extend(prod.figures)


def test_first_deploy_converges_every_host(prod: Prod) -> None:
    recap = prod.first.recap()
    assert set(recap) == {CONTROL, *SERVICE_HOSTS}
    for host in SERVICE_HOSTS:
        assert prod.service_images(host) == [expected_image(prod, V1)] * 2, host


def active_targets(prod: Prod) -> list[dict[str, Any]]:
    """The control host's Prometheus' active targets, as its API gives them."""
    response = prod.admin("prometheus", "/api/v1/targets?state=active")
    assert response.status == 200, response.body[:300]
    active: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
    return active


def targets(prod: Prod) -> dict[str, str]:
    """The cepage-service targets of the control host's Prometheus: instance -> health."""
    return {
        t["labels"]["instance"]: t["health"]
        for t in active_targets(prod)
        if t["labels"].get("job") == "cepage-service"
    }


def test_prometheus_scrapes_every_replica_of_every_service_host(prod: Prod) -> None:
    addresses = {prod.rehearsal.host(h).ip for h in SERVICE_HOSTS}
    deadline = time.monotonic() + 90  # the first scrape comes within one interval
    while True:
        found = targets(prod)
        if (len(found) == 4 and set(found.values()) == {"up"}) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert {i.rsplit(":", 1)[0] for i in found} == addresses, found
    assert len(found) == 4 and set(found.values()) == {"up"}, found


def test_every_job_of_the_control_host_is_scraped(prod: Prod) -> None:
    # MLflow's among them: MLflow 3 answers 403 to a Host header it does not know (its
    # DNS-rebinding check), which the address Prometheus finds by DNS (IP:5000) was; its job now
    # scrapes it by name (monitoring/prometheus/prometheus.yml).
    deadline = time.monotonic() + 60
    while True:
        health = {(t["labels"]["job"], t["labels"]["instance"]): t for t in active_targets(prod)}
        down = {k: t.get("lastError", "") for k, t in health.items() if t["health"] != "up"}
        if not down or time.monotonic() > deadline:
            break
        time.sleep(3)
    jobs = {job for job, _ in health}
    assert {"cepage-service", "mlflow", "node", "prometheus", "alertmanager"} <= jobs, jobs
    assert not down, down


Changes = list[tuple[str, str, str]]


@dataclass
class Deployed:
    """A deploy run under load, and what the balancer did meanwhile."""

    run: Run
    load: Report
    changes: Changes
    """(time, server, UP|DOWN) of each mark."""
    down_reasons: list[tuple[str, str]]
    """(server, reason) of each DOWN mark."""

    @property
    def log(self) -> str:
        marks = "\n".join(f"  {at} {server} {state}" for at, server, state in self.changes)
        reasons = "\n".join(f"  {server} down: {reason}" for server, reason in self.down_reasons)
        return f"{marks}\n{reasons}"

    def assert_no_request_lost(self) -> None:
        """Every request of the deploy answered with a prediction."""
        assert not self.load.failures, (
            f"{self.load.summary()}\n{self.load.failures_text()}\n{self.log}"
        )

    def assert_drained_through_health_check(self, *hosts_drained: str) -> None:
        """Each host the deploy took out was first marked down by a health check answered 503
        (the drain flag: compose/caddy/sites/app-on.caddy) while its proxy still served, never
        by a refused connection (a proxy stopped under the balancer: that lost requests)."""
        for host in hosts_drained:
            first = next((why for server, why in self.down_reasons if server == host), None)
            assert first == "Layer7 wrong status, code: 503", (host, self.log)


def deploy_under_load(prod: Prod, name: str, **kwargs: Any) -> Deployed:
    """A deploy while the load runs (from 5 s before to 5 s after), and the balancer's marks of
    the servers meanwhile."""
    log = prod.balancer.log(prod.rehearsal.docker)
    before, before_down = len(lb.state_changes(log)), len(lb.down_reasons(log))
    with prod.load() as load:
        time.sleep(5)
        began = time.monotonic()
        run = prod.deployer.deploy(**kwargs)
        took = time.monotonic() - began
        time.sleep(5)
        report = load.stop()
    log = prod.balancer.log(prod.rehearsal.docker)
    changes = lb.state_changes(log)[before:]
    prod.figures.append(f"{name}: deploy {took:.0f} s; load: {report.summary()}")
    prod.figures.extend(switch_times(changes))
    return Deployed(run, report, changes, lb.down_reasons(log)[before_down:])


def switch_times(changes: Changes) -> list[str]:
    """Each host's time out of the balancer (marked DOWN until marked UP again)."""
    lines, down = [], {}
    for at, server, state in changes:
        stamp = datetime.fromisoformat(at.rstrip("Z")[:26])
        if state == "DOWN":
            down[server] = stamp
        elif server in down:
            seconds = (stamp - down.pop(server)).total_seconds()
            lines.append(f"  {server}: out of the balancer {seconds:.1f} s")
    lines += [f"  {server}: still out of the balancer" for server in down]
    return lines


def test_a_broken_release_stops_on_its_first_host_and_rollback_restores_v1(prod: Prod) -> None:
    broken = deploy_under_load(prod, "broken release", tag=BROKEN, digests=prod.digests[BROKEN])
    first, second = SERVICE_HOSTS
    # The play stopped there: the second host was never touched, and kept serving v1.
    second_images = prod.service_images(second)
    rollback = deploy_under_load(prod, "rollback", action="rollback")
    assert broken.run.returncode != 0, broken.run.output[-3000:]
    assert broken.run.recap()[first]["failed"] == 1, broken.run.recap()
    assert "unhealthy" in broken.run.output, broken.run.output[-3000:]
    assert second_images == [expected_image(prod, V1)] * 2
    rollback.run.assert_ok()
    for host in SERVICE_HOSTS:
        assert prod.service_images(host) == [expected_image(prod, V1)] * 2, host
    broken.assert_drained_through_health_check(first)
    broken.assert_no_request_lost()
    rollback.assert_no_request_lost()


def smoke(prod: Prod) -> subprocess.CompletedProcess[str]:
    """scripts/smoke.py as the deploy workflow runs it, with the names resolved to this machine
    (a sitecustomize stands in for the DNS records) and both sites' certificates trusted."""
    shim = prod.directory / "resolve"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(
        "import socket\n"
        "_getaddrinfo = socket.getaddrinfo\n"
        "def _local(host, *args, **kwargs):\n"
        f"    if isinstance(host, str) and host.endswith('.{deploy.DOMAIN}'):\n"
        "        host = '127.0.0.1'\n"
        "    return _getaddrinfo(host, *args, **kwargs)\n"
        "socket.getaddrinfo = _local\n"
    )
    bundle = prod.directory / "ca-bundle.pem"
    bundle.write_text(prod.balancer.ca + prod.control_ca)
    control_port = prod.rehearsal.host(CONTROL).ports[443]
    env = {
        **os.environ,
        "PYTHONPATH": str(shim),
        "REQUESTS_CA_BUNDLE": str(bundle),
        "CEPAGE_SMOKE_PROMETHEUS_USER": deploy.PROXY_USER,
        "CEPAGE_SMOKE_PROMETHEUS_PASSWORD": deploy.PROXY_PASSWORD,
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "smoke.py"),
         f"https://api.{deploy.DOMAIN}:{prod.balancer.https_port}",
         "--prometheus", f"https://prometheus.{deploy.DOMAIN}:{control_port}"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip  # nosec B603: the repository's own script


def test_a_rolling_deploy_under_load_takes_every_host_to_v2(prod: Prod) -> None:
    rolled = deploy_under_load(prod, "v1 -> v2", tag=V2, digests=prod.digests[V2])
    rolled.run.assert_ok()
    for host in SERVICE_HOSTS:
        assert prod.service_images(host) == [expected_image(prod, V2)] * 2, host
    rolled.assert_drained_through_health_check(*SERVICE_HOSTS)
    rolled.assert_no_request_lost()
    marks, log = rolled.changes, rolled.log
    # One host at a time: each went out of the balancer and came back, and never were two out
    # at once (a health check late on the busy machine may add a flap: that is not asserted).
    for host in SERVICE_HOSTS:
        states = [state for _, server, state in marks if server == host]
        assert "DOWN" in states and states[-1] == "UP", (host, log)
    out: set[str] = set()
    for _, server, state in marks:
        (out.add if state == "DOWN" else out.discard)(server)
        assert len(out) < len(SERVICE_HOSTS), log
    done = smoke(prod)
    assert done.returncode == 0, done.stdout + done.stderr
    prod.figures.append("smoke after v2: " + done.stdout.strip().replace("\n", "; "))


def test_a_drain_flag_left_by_an_interrupted_deploy_is_cleared_by_the_next(prod: Prod) -> None:
    # A deploy stopped between the drain and the proxy's stop (Ctrl-C, a lost connection) leaves
    # the flag: the host answers 503 to the balancer and stays out until a deploy clears it,
    # even one with nothing to change on that host. The deploy is limited to that host
    # (`--limit`, as an operator would re-run it there): the whole site.yml on every host is
    # what the tests above run, and this saves CI the other two hosts' ~2 minutes.
    host = SERVICE_HOSTS[0]
    before = len(lb.state_changes(prod.balancer.log(prod.rehearsal.docker)))
    prod.sh(host, "docker exec cepage-proxy-1 touch /tmp/cepage-draining")
    limited = prod.deployer.deploy("--limit", host, tag=V2, digests=prod.digests[V2])
    limited.assert_ok()
    assert set(limited.recap()) == {host}, limited.recap()
    prod.sh(host, "docker exec cepage-proxy-1 test ! -e /tmp/cepage-draining")  # gone
    deadline = time.monotonic() + 60
    while True:
        marks = lb.state_changes(prod.balancer.log(prod.rehearsal.docker))[before:]
        states = [state for _, server, state in marks if server == host]
        if states[-1:] == ["UP"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert states[:1] == ["DOWN"] and states[-1:] == ["UP"], marks


def detection(values: lb.BackendValues, scale: float) -> float:
    """How long the balancer takes to mark an unreachable host down: one check interval, then
    `retries` failed checks, each waiting its connect timeout (HAProxy's min of the connect
    timeout and the interval), the ones after the first at the faster transient interval."""
    inter = values.health_check_delay * scale
    connect = min(values.timeout_connect, inter)
    return (
        inter
        + (values.health_check_max_retries - 1) * values.health_check_transient_delay * scale
        + values.health_check_max_retries * connect
    )


def test_a_killed_service_host_costs_only_what_fails_before_the_balancer_notices(
    prod: Prod,
) -> None:
    values = lb.backend_values()
    notice = detection(values, lb.TIME_SCALE)
    victim = prod.rehearsal.host(SERVICE_HOSTS[1])
    before = len(lb.state_changes(prod.balancer.log(prod.rehearsal.docker)))
    with prod.load() as load:
        time.sleep(5)
        killed_at = time.monotonic()
        killed_wall = datetime.now(UTC).replace(tzinfo=None)
        prod.rehearsal.docker.run("kill", victim.container)  # a power cut: no shutdown
        time.sleep(notice + 15)
        report = load.stop()
    since_start = killed_at - load.started
    marks = lb.state_changes(prod.balancer.log(prod.rehearsal.docker))[before:]
    # The balancer noticed: the victim marked down, within the bound (plus a second of slack:
    # the log's clock and this one).
    downs = [at for at, server, state in marks if server == victim.spec.name and state == "DOWN"]
    assert downs, f"the balancer never marked {victim.spec.name} down: {marks}"
    noticed = (datetime.fromisoformat(downs[0].rstrip("Z")[:26]) - killed_wall).total_seconds()
    late = [o for o in report.failures if o.at > since_start + notice + 1.0]
    after = [o for o in report.outcomes if o.at > since_start + noticed + 1.0]
    prod.figures.append(
        f"killed host: load {report.summary()}; marked down {noticed:.1f} s after the kill "
        f"(bound {notice:.1f} s; {detection(values, 1.0):.0f} s at Scaleway's values); "
        f"failures before: {len(report.failures) - len(late)}, after: {len(late)}"
    )
    assert noticed <= notice + 1.0, (noticed, notice)
    assert not late, f"{report.summary()}\n{report.failures_text()}"
    # Once marked down, no request goes to the dead host: none waits out a connect timeout.
    assert len(after) > 20 and all(o.ok for o in after)
    slow = [o for o in after if o.latency >= values.timeout_connect]
    assert not slow, slow[:5]


def test_a_stopped_replica_fires_an_alert_that_reaches_alertmanager(prod: Prod) -> None:
    host = SERVICE_HOSTS[0]
    before = targets(prod)
    prod.sh(host, "docker stop cepage-service-2")
    deadline = time.monotonic() + 60
    down: set[str] = set()
    while not down and time.monotonic() < deadline:
        time.sleep(3)
        down = {
            i for i, h in targets(prod).items()
            if h == "down" and i.startswith(prod.rehearsal.host(host).ip + ":")
        }  # fmt: skip
    assert len(down) == 1, (before, targets(prod))
    [instance] = down
    # CepageServiceDown fires after 1 min down (monitoring/prometheus/rules/cepage.alerts.yml),
    # then Prometheus sends it to Alertmanager.
    deadline = time.monotonic() + 180
    alerts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = prod.admin("alertmanager", "/api/v2/alerts")
        assert response.status == 200, response.body[:300]
        alerts = [
            a for a in response.json()
            if a["labels"].get("alertname") == "CepageServiceDown"
            and a["labels"].get("instance") == instance
        ]  # fmt: skip
        if alerts:
            break
        time.sleep(5)
    assert alerts and alerts[0]["status"]["state"] == "active", alerts
