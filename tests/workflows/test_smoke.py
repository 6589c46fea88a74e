"""scripts/smoke.py, the deploy workflow's smoke test, against a real `bentoml serve` serving a real
champion and a real Prometheus scraping it; and each of its failures, with its one-line message."""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.procs import ROOT, bentoml_serve, free_port, require_binary, running

pytestmark = [pytest.mark.workflows, pytest.mark.integration]

SMOKE = ROOT / "scripts" / "smoke.py"
API_KEY = "smoke-test-key"


def smoke(
    *args: str, env: dict[str, str] | None = None, wait: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run scripts/smoke.py as the workflow does (its own process, the repo's Python).

    A passing check returns at once; a failing one retries until ``wait``: failure cases wait
    a little only (the first scrape of the real Prometheus comes within a second or two)."""
    environ = {"PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run(
        [sys.executable, str(SMOKE), *args, "--wait", str(wait), "--interval", "0.5"],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def failure(done: subprocess.CompletedProcess[str]) -> str:
    """The one FAIL line (and nothing else on stderr)."""
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smoke: FAIL "), done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def prometheus(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping the served model every second as job `cepage-service`, and a
    dead target as job `cepage-dead`."""
    binary = require_binary("prometheus")
    directory = tmp_path_factory.mktemp("smoke-prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "cepage-service",
             "static_configs": [{"targets": [api_url.removeprefix("http://")]}]},
            {"job_name": "cepage-dead",
             "static_configs": [{"targets": [f"127.0.0.1:{free_port()}"]}]},
        ],
    }  # fmt: skip
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [binary, f"--config.file={directory / 'prometheus.yml'}"]
    argv += [f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    with running(argv, log=directory / "prometheus.log", ready_url=f"{url}/-/ready"):
        yield url


def test_passes_against_the_real_service(api_url: str, metadata: dict[str, Any]) -> None:
    done = smoke(api_url)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"ok: {api_url}/readyz is ready"
    assert f"version {metadata['version']}" in lines[1]
    label = lines[2].rsplit("-> ", 1)[1]
    assert label in metadata["feature_schema"]["classes"]
    assert lines[-2] == "skip: no Prometheus URL given, scraping not checked"
    assert lines[-1] == "smoke: PASS"


def test_checks_the_service_is_scraped(api_url: str, prometheus: str) -> None:
    done = smoke(api_url, env={"CEPAGE_SMOKE_PROMETHEUS_URL": prometheus})
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'ok: Prometheus scrapes 1 target(s) of job "cepage-service", all up' in done.stdout


def test_fails_when_the_target_is_down(api_url: str, prometheus: str) -> None:
    line = failure(smoke(api_url, "--prometheus", prometheus, "--job", "cepage-dead", wait=3))
    assert 'up{job="cepage-dead"} is 0 for 127.0.0.1:' in line


def test_fails_when_the_service_is_not_scraped(api_url: str, prometheus: str) -> None:
    line = failure(smoke(api_url, "--prometheus", prometheus, "--job", "cepage-nowhere", wait=2))
    assert line == 'smoke: FAIL Prometheus has no up{job="cepage-nowhere"}: the job is not scraped'


def test_fails_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, str(SMOKE), url, "--wait", "1", "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = failure(done)
    assert line.startswith(f"smoke: FAIL GET {url}/readyz: ConnectionError")


def test_an_untrusted_certificate_is_named_with_its_likely_cause(tmp_path: Path) -> None:
    """A new environment whose certificate is missing or refused (a proxy still on its own CA, a
    rate-limited authority): the failure says so, not just a TLS stack trace."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.10-0-0-1.sslip.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_port}"
        line = failure(smoke(url, wait=1))
    finally:
        server.shutdown()
    assert line.startswith(f"smoke: FAIL GET {url}/readyz: SSLError"), line
    assert "certificate authority refused it" in line and "HTTPS and names" in line


def test_fails_on_a_server_that_is_not_the_service(prometheus: str) -> None:
    # A real HTTP server, not ours: no /readyz.
    line = failure(smoke(prometheus, wait=1))
    assert line == f"smoke: FAIL GET {prometheus}/readyz answered 404, not 200"


def test_sends_the_api_key_when_the_service_requires_one(trained_home: Path) -> None:
    with bentoml_serve(trained_home, extra_env={"CEPAGE_API_KEY": API_KEY}) as url:
        line = failure(smoke(url, wait=1))
        assert line.startswith(f"smoke: FAIL GET {url}/metadata answered 401 (set CEPAGE_API_KEY)")
        wrong = failure(smoke(url, env={"CEPAGE_API_KEY": "not-the-key"}, wait=1))
        assert "answered 401" in wrong
        done = smoke(url, env={"CEPAGE_API_KEY": API_KEY})
        assert done.returncode == 0, done.stdout + done.stderr


class _Impostor(BaseHTTPRequestHandler):
    """Ready, a valid schema, but a label that is not one of the classes."""

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        schema = {"classes": ["a", "b"], "features": [{"name": "x", "dtype": "integer",
                                                       "median": 2.6}]}  # fmt: skip
        self._send({"name": "m", "version": "1", "feature_schema": schema})

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        record = json.loads(self.rfile.read(length))["records"][0]
        assert record == {"x": 3}, record  # the integer feature's median, rounded
        self._send({"predictions": [{"label": "zebra"}]})

    def log_message(self, *args: Any) -> None:
        pass


def test_fails_on_a_label_outside_the_classes() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        line = failure(smoke(f"http://127.0.0.1:{server.server_address[1]}", wait=1))
    finally:
        server.shutdown()
        server.server_close()
    assert line == "smoke: FAIL POST /predict: label 'zebra' is not one of the classes ['a', 'b']"


def test_usage_error_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, str(SMOKE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and "usage:" in done.stderr
