"""The reverse proxy's real Caddyfile, run by a real Caddy with the rate-limit module.

The binary is the one compose/caddy/Dockerfile builds (Caddy plus caddy-ratelimit, same versions),
built from source by tests/tools/caddy.sh, since no image registry is reachable here. The upstreams
(ui, service, mlflow, ...) are compose names that do not resolve outside compose: a request that
gets through the proxy's own checks ends in 502, one the proxy stops gets its own answer (403,
401, 404, 429, 308). That is exactly the line these tests draw (security items 5, 6, 7 and 12).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import requests

from stack.processes import free_port, running
from tests.support.procs import ROOT, built_by

pytestmark = pytest.mark.docker

CADDYFILE = ROOT / "compose" / "caddy" / "Caddyfile"
PASSWORD = "operator-test-password"  # pragma: allowlist secret
# The address a test client connects from; the public rate limit keys on what the trusted proxy
# (here: the test itself, on 127.0.0.1) says the client is.
CLIENT = "203.0.113.7"


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
        assert get(base, "api.localhost", "/readyz").status_code == 502


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
        assert get(base, f"api.{app}", "/readyz").status_code == 502


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
        assert get(base, "api.localhost", "/readyz").status_code == 502


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
        assert codes == [502, 502, 502, 429, 429]
        # Another client behind the same balancer has its own allowance.
        other = get(base, "api.localhost", "/predict", headers={"X-Forwarded-For": "203.0.113.8"})
        assert other.status_code == 502


def test_cleartext_requests_from_the_balancer_go_to_https(proxy: Proxy) -> None:
    with proxy(CEPAGE_TRUSTED_PROXIES="127.0.0.1/32") as base:
        for site in ("localhost", "api.localhost"):
            moved = get(base, site, "/predict?x=1", headers={"X-Forwarded-Proto": "http"})
            assert moved.status_code == 308
            assert moved.headers["Location"] == f"https://{site}/predict?x=1"
            assert get(base, site, "/", headers={"X-Forwarded-Proto": "https"}).status_code == 502


def test_cleartext_header_from_an_untrusted_address_is_ignored(proxy: Proxy) -> None:
    # Only the balancer says how the client came; anyone else's header changes nothing.
    with proxy(CEPAGE_TRUSTED_PROXIES="198.51.100.0/24") as base:
        answer = get(base, "api.localhost", "/readyz", headers={"X-Forwarded-Proto": "http"})
        assert answer.status_code == 502


def test_the_api_name_does_not_serve_metrics(proxy: Proxy) -> None:
    with proxy() as base:
        assert get(base, "api.localhost", "/metrics").status_code == 404
        assert get(base, "api.localhost", "/metrics/anything").status_code == 404
        assert get(base, "api.localhost", "/readyz").status_code == 502
