"""The rehearsal's load balancer: HAProxy configured from iac/lb.tf's values, in front of the hosts.

Scaleway's load balancer (built on HAProxy) is unreachable here; Debian's HAProxy stands in for
it, configured from the same values (``backend_values`` reads them from iac/lb.tf, their one
home, with the provider's defaults for what lb.tf leaves unset): the backend port, the health
check (path, Host header, delay, timeout, retries, the faster checks while a server changes
state), the connection retries and whether they go to another server (redispatch), and what
happens to sessions on a server marked down. Like the real one it terminates TLS on 443 (a
certificate made here for the app's names), sends port 80 to HTTPS, and forwards the client's
address in X-Forwarded-For.

The health checks' intervals are multiplied by ``TIME_SCALE``, and so is the deploy's wait for the
balancer (``cepage_stack_lb_settle_seconds``, whose default is made from the same values): the
relations between them hold, and a rolling deploy of two hosts takes one minute instead of four.
Timeouts stay Scaleway's: scaled down, a busy 2-core machine answers a health check too late and
the balancer takes a healthy host out (the first run of the rehearsal did exactly that).
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from stack.processes import ROOT
from tests.rehearsal import hosts
from tests.rehearsal.hosts import Rehearsal

LB_TF = ROOT / "iac" / "lb.tf"
TIME_SCALE = 0.2
# terraform-provider-scaleway 2.81's defaults (internal/services/lb/backend.go) for the
# settings iac/lb.tf leaves unset; redispatch unset is the API's "never".
PROVIDER_DEFAULTS = {
    "max_retries": "3",
    "timeout_connect": '"5s"',
    "timeout_server": '"5m"',
    "health_check_transient_delay": '"0.5s"',
    "on_marked_down_action": '"none"',
    "redispatch_attempt_count": "0",
}
# Not a setting of Scaleway's backends: HAProxy's own default, said here so it is visible.
HEALTH_CHECK_RISE = 2


def _block(text: str, header: str) -> str:
    """The body of ``header { ... }`` (a top-level block of an HCL file)."""
    start = text.index(header)
    end = text.index("\n}\n", start)
    return text[start:end]


def _seconds(value: str) -> float:
    match = re.fullmatch(r'"(\d+(?:\.\d+)?)(ms|s|m)"', value)
    if match is None:
        raise ValueError(f"not a duration: {value}")
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2)]


@dataclass(frozen=True)
class BackendValues:
    """The values of iac/lb.tf's service backend the stand-in is configured from."""

    health_check_delay: float
    health_check_timeout: float
    health_check_max_retries: int
    health_check_transient_delay: float
    max_retries: int
    redispatch_attempt_count: int
    on_marked_down_action: str
    timeout_connect: float
    timeout_server: float
    probes_api_name: bool
    """The health check's Host header is the API's name (with a name; the IP's site without)."""

    def scaled(self, seconds: float) -> str:
        return f"{max(1, round(seconds * TIME_SCALE * 1000))}ms"

    @staticmethod
    def unscaled(seconds: float) -> str:
        return f"{round(seconds * 1000)}ms"


def backend_values(lb_tf: Path = LB_TF) -> BackendValues:
    """iac/lb.tf's ``scaleway_lb_backend.service`` settings, with the provider's defaults."""
    block = _block(lb_tf.read_text(), 'resource "scaleway_lb_backend" "service"')
    found = dict(re.findall(r"^\s+(\w+)\s+=\s+(.+?)\s*$", block, re.MULTILINE))

    def value(name: str) -> str:
        return found.get(name) or PROVIDER_DEFAULTS[name]

    return BackendValues(
        health_check_delay=_seconds(value("health_check_delay")),
        health_check_timeout=_seconds(value("health_check_timeout")),
        health_check_max_retries=int(value("health_check_max_retries")),
        health_check_transient_delay=_seconds(value("health_check_transient_delay")),
        max_retries=int(value("max_retries")),
        redispatch_attempt_count=int(value("redispatch_attempt_count")),
        on_marked_down_action=value("on_marked_down_action").strip('"'),
        timeout_connect=_seconds(value("timeout_connect")),
        timeout_server=_seconds(value("timeout_server")),
        probes_api_name="api." in found.get("host_header", ""),
    )


def settle_seconds() -> int:
    """The deploy's wait for the balancer, scaled as the balancer's own durations are."""
    default = Path(ROOT / "playbooks" / "roles" / "cepage_stack" / "defaults" / "main.yml")
    match = re.search(r"^cepage_stack_lb_settle_seconds: (\d+)$", default.read_text(), re.M)
    assert match is not None, "cepage_stack_lb_settle_seconds is not in the role's defaults"
    return max(1, round(int(match.group(1)) * TIME_SCALE))


def haproxy_config(
    values: BackendValues,
    servers: dict[str, str],
    domain: str,
    health_check_path: str,
    port: int,
) -> str:
    """HAProxy's configuration for ``servers`` ({name: private address}), from ``values``."""
    host = f"api.{domain}" if values.probes_api_name else next(iter(servers.values()))
    redispatch = (
        f"    option redispatch {values.redispatch_attempt_count}\n"
        if values.redispatch_attempt_count
        else "    no option redispatch\n"
    )
    marked_down = (
        " on-marked-down shutdown-sessions"
        if values.on_marked_down_action == "shutdown_sessions"
        else ""
    )
    server_lines = "".join(
        f"    server {name} {address}:{port} check\n" for name, address in servers.items()
    )
    return f"""\
# Written by tests/rehearsal/lb.py from iac/lb.tf's values (check intervals x {TIME_SCALE}).
global
    log stdout format raw local0 info
    maxconn 2000

defaults
    mode http
    log global
    option httplog
    timeout connect {values.unscaled(values.timeout_connect)}
    timeout client 60s
    timeout server {values.unscaled(values.timeout_server)}
    retries {values.max_retries}
{redispatch}
frontend http
    bind :80
    http-request redirect scheme https code 308 unless {{ path_beg /.well-known/acme-challenge/ }}
    default_backend service

frontend https
    bind :443 ssl crt /etc/haproxy/tls.pem
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    default_backend service

backend service
    balance roundrobin
    option httpchk
    http-check send meth GET uri {health_check_path} ver HTTP/1.1 hdr Host {host}
    http-check expect status 200
    timeout check {values.unscaled(values.health_check_timeout)}
    default-server inter {values.scaled(values.health_check_delay)} \
fastinter {values.scaled(values.health_check_transient_delay)} \
fall {values.health_check_max_retries} rise {HEALTH_CHECK_RISE}{marked_down}
{server_lines}"""


def certificate(directory: Path, domain: str) -> Path:
    """A self-signed certificate for the app's names (what Let's Encrypt gives the real one)."""
    key, cert, pem = (directory / n for n in ("tls.key", "tls.crt", "tls.pem"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={domain}", "-addext", f"subjectAltName=DNS:{domain},DNS:api.{domain}",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip  # nosec B603 B607: openssl, fixed arguments
    pem.write_text(cert.read_text() + key.read_text())
    return cert


@dataclass(frozen=True)
class LoadBalancer:
    container: str
    https_port: int
    """Its 443, published on 127.0.0.1."""
    ca: str
    """The certificate it serves (PEM), to verify against."""
    config: str

    def log(self, docker: hosts.Docker) -> str:
        done = docker.run("logs", "-t", self.container, check=False)
        return done.stdout + done.stderr


def start(
    rehearsal: Rehearsal, directory: Path, domain: str, health_check_path: str, port: int
) -> LoadBalancer:
    """The balancer in front of the layout's service hosts, on the private network."""
    servers = {h.spec.name: h.ip for h in rehearsal.hosts if h.spec.roles == ("service",)}
    config = haproxy_config(backend_values(), servers, domain, health_check_path, port)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "haproxy.cfg").write_text(config)
    cert = certificate(directory, domain)
    image = hosts.build_cached(rehearsal.docker, "lb")
    name = rehearsal.name("lb")
    rehearsal.containers.append(name)
    rehearsal.docker.run(
        "run", "-d", "--name", name, "--network", rehearsal.network,
        "-p", "127.0.0.1::443", "-v", f"{directory}:/etc/haproxy:ro", image,
    )  # fmt: skip
    balancer = LoadBalancer(
        name, hosts.published(rehearsal.docker, name, 443), cert.read_text(), config
    )
    deadline = time.monotonic() + 90
    while not _handshakes(balancer, domain):
        if time.monotonic() > deadline:
            log = balancer.log(rehearsal.docker)
            raise RuntimeError(f"the load balancer did not start:\n{log}")
        time.sleep(0.5)
    return balancer


def _handshakes(balancer: LoadBalancer, domain: str) -> bool:
    """Whether its 443 completes a TLS handshake for the app's name (Docker's published port
    accepts connections before HAProxy listens)."""
    context = ssl.create_default_context(cadata=balancer.ca)
    try:
        with (
            socket.create_connection(("127.0.0.1", balancer.https_port), timeout=3) as sock,
            context.wrap_socket(sock, server_hostname=f"api.{domain}"),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def state_changes(log: str) -> list[tuple[str, str, str]]:
    """(time, server, UP|DOWN) of each server the balancer marked, from its log: the lines of its
    `log stdout` (each change is also said on stderr, as a [WARNING], which is left out)."""
    pattern = re.compile(r"^(\S+) Server service/(\S+) is (UP|DOWN)", re.MULTILINE)
    return [(m.group(1), m.group(2), m.group(3)) for m in pattern.finditer(log)]


def down_reasons(log: str) -> list[tuple[str, str]]:
    """(server, reason) of each time the balancer marked a server down, in order, from its log:
    "Layer7 wrong status, code: 503" is a health check answered 503 (a drain), "Layer4 ..." a
    server that did not answer at all."""
    pattern = re.compile(
        r"^\S+ Server service/(\S+) is DOWN, reason: ([^,.]+(?:, code: \d+)?)", re.MULTILINE
    )
    return [(m.group(1), m.group(2)) for m in pattern.finditer(log)]
