"""The reverse proxy's real Caddyfile, run by a real Caddy with the rate-limit module.

The binary is the one compose/caddy/Dockerfile builds (Caddy plus caddy-ratelimit, same versions),
built from source by tests/tools/caddy.sh, since no image registry is reachable here. The upstreams
(ui, service, mlflow, ...) are compose names that do not resolve outside compose: a request that
gets through the proxy's own checks ends in 502 (503 on the API's site, whose replicas Caddy looks
up itself: no address, no upstream; see ``passed``), one the proxy stops gets its own answer (403,
401, 404, 429, 308). That is exactly the line these tests draw (security items 5, 6, 7 and 12).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import requests
from cryptography import x509

from bench.proxied import SITE_FILE, bench_caddyfile
from stack.processes import free_port, running
from tests.support.procs import ROOT, built_by

pytestmark = pytest.mark.docker

CADDYFILE = ROOT / "compose" / "caddy" / "Caddyfile"
PASSWORD = "operator-test-password"  # pragma: allowlist secret
# The address a test client connects from; the public rate limit keys on what the trusted proxy
# (here: the test itself, on 127.0.0.1) says the client is.
CLIENT = "203.0.113.7"
# What a request that passed every check of the proxy ends in here, where no upstream resolves:
# a fixed upstream (the UI, the admin sites) cannot be dialled (502); the API's replicas are found
# by Caddy's own DNS lookup (`dynamic a`, sites/app-on.caddy), which finds none: "no upstreams
# available", 503 with an empty body, told from the drain's 503 ("draining") by that body.
UPSTREAM_DOWN = {"api": 503, "other": 502}


def passed(answer: requests.Response, site: str) -> bool:
    """``answer`` came from the step after the proxy's checks: the upstream of ``site``."""
    expected = UPSTREAM_DOWN["api" if site.startswith("api.") else "other"]
    return answer.status_code == expected and answer.text == ""


@pytest.fixture(scope="module")
def caddy() -> Path:
    return built_by("caddy.sh", "Caddy with the rate-limit module")


@pytest.fixture(scope="module")
def password_hash(caddy: Path) -> str:
    # Cost 10, what docs/operations.md recommends: 14 (the default) costs ~1 s of CPU per check.
    done = subprocess.run(
        [str(caddy), "hash-password", "--plaintext", PASSWORD, "--bcrypt-cost", "10"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


Proxy = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def proxy(caddy: Path, password_hash: str, tmp_path: Path) -> Proxy:
    """Start Caddy on the real Caddyfile with these settings; yields the base URL (plain HTTP,
    the mode of a service instance behind the load balancer, so no certificate is involved)."""

    @contextmanager
    def start(**settings: str) -> Iterator[str]:
        port, admin = free_port(), free_port()
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "CADDY_ADMIN": f"127.0.0.1:{admin}",
            "CEPAGE_SITE_SCHEME": "http://",
            "CEPAGE_DOMAIN": f"localhost:{port}",
            "CEPAGE_ADMIN_DOMAIN": f"localhost:{port}",
            "CEPAGE_PROXY_USER": "operator",
            "CEPAGE_PROXY_PASSWORD_HASH": password_hash,
            # "{port}" in a setting stands for the port this proxy listens on.
            **{name: value.replace("{port}", str(port)) for name, value in settings.items()},
        }
        argv = [str(caddy), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
        log = tmp_path / f"caddy-{port}.log"
        with running(argv, log=log, env=env, ready_url=f"http://127.0.0.1:{admin}/config/"):
            yield f"http://127.0.0.1:{port}"

    return start


def get(base: str, site: str, path: str = "/", **kwargs: object) -> requests.Response:
    port = base.rsplit(":", 1)[1]
    headers: Mapping[str, str] = {"Host": f"{site}:{port}", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return requests.get(base + path, headers=headers, allow_redirects=False, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_admin_sites_refuse_addresses_outside_the_admin_ranges(proxy: Proxy) -> None:
    with proxy(CEPAGE_ADMIN_CIDRS="198.51.100.0/24") as base:
        for site in ("mlflow", "grafana", "prometheus", "alertmanager"):
            # 403 before any password is asked for (or checked: no bcrypt work for outsiders).
            refused = get(base, f"{site}.localhost", auth=("operator", PASSWORD))
            assert refused.status_code == 403, site
            assert "WWW-Authenticate" not in refused.headers
        # The public sites are not affected.
        assert passed(get(base, "api.localhost", "/readyz"), "api.localhost")


def test_admin_sites_ask_the_admin_ranges_for_the_password(proxy: Proxy) -> None:
    with proxy(CEPAGE_ADMIN_CIDRS="127.0.0.1/32") as base:
        assert get(base, "grafana.localhost").status_code == 401
        assert get(base, "grafana.localhost", auth=("operator", "wrong")).status_code == 401
        # Through the gate: on to Grafana (which does not resolve here).
        assert get(base, "grafana.localhost", auth=("operator", PASSWORD)).status_code == 502


def test_a_rotated_password_is_the_only_one_accepted(
    proxy: Proxy, caddy: Path, password_hash: str
) -> None:
    """Rotation (docs/operations.md): a new hash in the vault, a new deploy; the old password is
    refused from then on. The vault's hash is the proxy password's one home."""
    new_password = "rotated-operator-password"  # pragma: allowlist secret
    done = subprocess.run(
        [str(caddy), "hash-password", "--plaintext", new_password, "--bcrypt-cost", "10"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    with proxy(CEPAGE_ADMIN_CIDRS="127.0.0.1/32") as base:
        assert get(base, "mlflow.localhost", auth=("operator", PASSWORD)).status_code == 502
        assert get(base, "mlflow.localhost", auth=("operator", new_password)).status_code == 401
    with proxy(
        CEPAGE_ADMIN_CIDRS="127.0.0.1/32", CEPAGE_PROXY_PASSWORD_HASH=done.stdout.strip()
    ) as base:
        assert get(base, "mlflow.localhost", auth=("operator", PASSWORD)).status_code == 401
        assert get(base, "mlflow.localhost", auth=("operator", new_password)).status_code == 502


def test_admin_sites_hang_under_their_own_name(proxy: Proxy) -> None:
    """No domain in prod: the app's name is the load balancer's, the admin sites' the control
    host's (iac/main.tf, ip_dns_zone); each site answers under its own name only."""
    app, admin = "10-0-0-1.sslip.test", "10-0-0-2.sslip.test"
    with proxy(
        CEPAGE_ADMIN_CIDRS="127.0.0.1/32",
        CEPAGE_DOMAIN=app + ":{port}",
        CEPAGE_ADMIN_DOMAIN=admin + ":{port}",
    ) as base:
        assert get(base, f"mlflow.{admin}").status_code == 401
        nothing = get(base, f"mlflow.{app}")
        assert nothing.status_code == 200 and nothing.content == b""
        assert passed(get(base, f"api.{app}", "/readyz"), f"api.{app}")


def test_names_without_a_domain_are_served_over_tls(proxy: Proxy, tmp_path: Path) -> None:
    """The no-domain names (iac/: each IP under ip_dns_zone), served over HTTPS with a
    certificate for each site's own name: here from Caddy's internal CA (CEPAGE_ACME_ISSUERS=
    internal, offline), in the cloud from Let's Encrypt for the very same site addresses."""
    app, admin = "10-0-0-1.sslip.test", "10-0-0-2.sslip.test"
    with proxy(
        CEPAGE_SITE_SCHEME="",
        CEPAGE_ACME_ISSUERS="internal",
        CEPAGE_ADMIN_CIDRS="127.0.0.1/32",
        CEPAGE_DOMAIN=app + ":{port}",
        CEPAGE_ADMIN_DOMAIN=admin + ":{port}",
    ) as base:
        port = int(base.rsplit(":", 1)[1])
        for name in (f"api.{app}", app, f"mlflow.{admin}"):
            names = served_certificate_names(port, name)
            assert names == [name], (name, names)
        # Through TLS, the same gates: the admin site asks for the password.
        assert https_status(port, f"mlflow.{admin}") == b"HTTP/1.1 401 Unauthorized"


def served_certificate_names(port: int, server_name: str) -> list[str]:
    """The DNS names of the certificate the proxy presents for ``server_name`` (SNI)."""
    for _ in range(50):  # the internal CA issues on the first handshake of each name
        try:
            with tls_to(port, server_name) as tls:
                der = tls.getpeercert(binary_form=True)
            break
        except (ssl.SSLError, ConnectionError):
            time.sleep(0.2)
    else:
        raise AssertionError(f"no certificate for {server_name}")
    assert der is not None
    certificate = x509.load_der_x509_certificate(der)
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return extension.value.get_values_for_type(x509.DNSName)


@contextmanager
def tls_to(port: int, server_name: str) -> Iterator[ssl.SSLSocket]:
    """A TLS connection to the proxy on 127.0.0.1 asking for ``server_name`` (SNI); the internal
    CA is not trusted here: the test reads the certificate, it does not rely on it."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        yield tls


def https_status(port: int, host: str) -> bytes:
    """The status line of ``GET /`` for ``host`` over TLS."""
    with tls_to(port, host) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return tls.recv(64).split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("issuers", "expected"),
    [
        ("letsencrypt", []),  # Caddy's default: Let's Encrypt alone, no policy written
        ("letsencrypt-zerossl", [{"email": "ops@example.org", "module": "acme"},
                                 {"ca": "https://acme.zerossl.com/v2/DV90",
                                  "email": "ops@example.org", "module": "acme"}]),
        ("internal", [{"module": "internal"}]),
    ],
)  # fmt: skip
def test_the_certificate_issuers_follow_the_setting(
    caddy: Path, tmp_path: Path, issuers: str, expected: list[dict[str, str]]
) -> None:
    """Let's Encrypt's weekly limit per registered domain is shared by every user of a zone like
    sslip.io: with CEPAGE_ACME_EMAIL, ZeroSSL takes over when Let's Encrypt refuses."""
    done = subprocess.run(
        [str(caddy), "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CEPAGE_DOMAIN": "ml.example.org",
             "CEPAGE_ADMIN_DOMAIN": "ml.example.org", "CEPAGE_ACME_ISSUERS": issuers,
             "CEPAGE_ACME_EMAIL": "ops@example.org",
             "CEPAGE_PROXY_USER": "operator", "CEPAGE_PROXY_PASSWORD_HASH": "x"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    policies = json.loads(done.stdout).get("apps", {}).get("tls", {}).get("automation", {})
    found = [issuer for policy in policies.get("policies", []) for issuer in policy["issuers"]]
    assert found == expected


def test_password_guessing_is_rate_limited_per_address(proxy: Proxy) -> None:
    with proxy(CEPAGE_ADMIN_CIDRS="127.0.0.1/32", CEPAGE_ADMIN_RATE_LIMIT_EVENTS="5") as base:
        codes = [get(base, "mlflow.localhost", auth=("operator", f"guess-{i}")).status_code
                 for i in range(8)]  # fmt: skip
        assert codes[:5] == [401] * 5
        assert codes[5:] == [429] * 3
        # The right password does not get through a limit already reached either.
        assert get(base, "mlflow.localhost", auth=("operator", PASSWORD)).status_code == 429


def test_a_service_instance_serves_no_admin_site(proxy: Proxy) -> None:
    with proxy(CEPAGE_ADMIN_CIDRS="127.0.0.1/32", CEPAGE_ADMIN_SITES="off") as base:
        for site in ("mlflow", "grafana", "prometheus", "alertmanager"):
            answer = get(base, f"{site}.localhost", auth=("operator", PASSWORD))
            # No site for the name: Caddy's empty answer, nothing proxied anywhere.
            assert answer.status_code == 200 and answer.content == b"", site
        assert passed(get(base, "api.localhost", "/readyz"), "api.localhost")


def test_a_control_host_serves_no_public_site(proxy: Proxy) -> None:
    """Behind a load balancer the control host's proxy serves the admin sites only: it never
    certifies (nor proxies) the app's names, which point at the balancer."""
    with proxy(CEPAGE_ADMIN_CIDRS="127.0.0.1/32", CEPAGE_APP_SITES="off") as base:
        for site in ("localhost", "api.localhost"):
            answer = get(base, site, "/readyz")
            assert answer.status_code == 200 and answer.content == b"", site
        assert get(base, "mlflow.localhost").status_code == 401


def test_a_wrong_admin_sites_switch_stops_the_proxy(
    caddy: Path, password_hash: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(caddy), "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CEPAGE_ADMIN_SITES": "yes",
             "CEPAGE_DOMAIN": "localhost", "CEPAGE_PROXY_USER": "operator",
             "CEPAGE_PROXY_PASSWORD_HASH": password_hash},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "admin-yes.caddy" in done.stderr


def test_forged_forwarded_for_does_not_escape_the_rate_limit(proxy: Proxy) -> None:
    """Behind the load balancer (a trusted proxy) a client may prepend its own X-Forwarded-For
    entries; strict mode takes the address the balancer appended, so each new forged value is
    still the same client."""
    with proxy(CEPAGE_TRUSTED_PROXIES="127.0.0.1/32", CEPAGE_RATE_LIMIT_EVENTS="3") as base:
        codes = [
            get(base, "api.localhost", "/predict",
                headers={"X-Forwarded-For": f"10.0.0.{i}, {CLIENT}"}).status_code
            for i in range(5)
        ]  # fmt: skip
        assert codes == [503, 503, 503, 429, 429]  # 503: passed (the API's replicas)
        # Another client behind the same balancer has its own allowance.
        other = get(base, "api.localhost", "/predict", headers={"X-Forwarded-For": "203.0.113.8"})
        assert passed(other, "api.localhost")


def test_cleartext_requests_from_the_balancer_go_to_https(proxy: Proxy) -> None:
    with proxy(CEPAGE_TRUSTED_PROXIES="127.0.0.1/32") as base:
        for site in ("localhost", "api.localhost"):
            moved = get(base, site, "/predict?x=1", headers={"X-Forwarded-Proto": "http"})
            assert moved.status_code == 308
            assert moved.headers["Location"] == f"https://{site}/predict?x=1"
            assert passed(get(base, site, "/", headers={"X-Forwarded-Proto": "https"}), site)


def test_cleartext_header_from_an_untrusted_address_is_ignored(proxy: Proxy) -> None:
    # Only the balancer says how the client came; anyone else's header changes nothing.
    with proxy(CEPAGE_TRUSTED_PROXIES="198.51.100.0/24") as base:
        answer = get(base, "api.localhost", "/readyz", headers={"X-Forwarded-Proto": "http"})
        assert passed(answer, "api.localhost")


def test_the_api_name_does_not_serve_metrics(proxy: Proxy) -> None:
    with proxy() as base:
        assert get(base, "api.localhost", "/metrics").status_code == 404
        assert get(base, "api.localhost", "/metrics/anything").status_code == 404
        assert passed(get(base, "api.localhost", "/readyz"), "api.localhost")


def test_a_drain_flag_fails_the_health_check_and_nothing_else(proxy: Proxy, tmp_path: Path) -> None:
    # What a rolling deploy does to the host it is about to change (tasks/up.yml): the balancer's
    # probe gets 503 and marks the host down, while every other request still goes through.
    drain = tmp_path / "drain"
    drain.mkdir()
    flag = drain / "cepage-draining"
    with proxy(CEPAGE_DRAIN_DIR=str(drain), CEPAGE_HEALTH_CHECK_PATH="/healthz") as base:
        assert passed(get(base, "api.localhost", "/healthz"), "api.localhost")
        flag.touch()
        for site in ("api.localhost", "localhost"):
            probe = get(base, site, "/healthz")
            assert probe.status_code == 503, site
            assert probe.text == "draining"
            # Served as before (on to the upstream, which does not resolve here).
            assert passed(get(base, site, "/readyz"), site), site
            assert passed(get(base, site, "/healthz/more"), site), site
        flag.unlink()
        assert passed(get(base, "api.localhost", "/healthz"), "api.localhost")


def test_the_benchs_proxy_is_the_api_site_with_its_replicas_by_address(
    caddy: Path, tmp_path: Path
) -> None:
    """bench/proxied.py's Caddyfile (make bench's proxied rows): this Caddy loads it, and it
    balances over the replicas it is given with the prod file's policy."""
    config = tmp_path / "Caddyfile"
    upstreams = ["127.0.0.1:4001", "127.0.0.1:4002"]
    config.write_text(bench_caddyfile(SITE_FILE.read_text(), free_port(), upstreams))
    done = subprocess.run(
        [str(caddy), "adapt", "--config", str(config), "--adapter", "caddyfile"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    proxies = re.findall(r'\{"handler":"reverse_proxy".*?"upstreams":\[(.*?)\]', text)
    assert proxies, text
    assert re.findall(r'"dial":"([^"]+)"', proxies[0]) == upstreams
    assert '"selection_policy":{"policy":"least_conn"}' in text
    assert '"passive":{"fail_duration":10000000000}' in text  # 10 s, in nanoseconds
