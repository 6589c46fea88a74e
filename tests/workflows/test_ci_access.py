"""scripts/ci_access.py against a fake Scaleway Instance API: a real HTTP server in a thread that
keeps security group rules in memory and answers as the real API does (paths, status codes and
JSON shapes of scaleway-sdk-go's api/instance/v1: ListSecurityGroupRules, CreateSecurityGroupRule,
DeleteSecurityGroupRule, and the API's error bodies). The script runs as the workflows run it
(``python -m scripts.ci_access``, a subprocess) with ``SCW_API_URL`` pointing at the fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.support.procs import ROOT

pytestmark = pytest.mark.workflows

ZONE = "fr-par-1"
EDGE = "11111111-2222-4333-8444-555555555555"
BACKEND = "66666666-7777-4888-9999-000000000000"
TOKEN = "00000000-0000-4000-8000-00000000c1a0"  # pragma: allowlist secret
ADMIN = "203.0.113.4/32"
RUNNER = "20.55.14.7"  # a public address (GitHub runners are in Azure ranges)
OTHER = "20.55.14.99"


def rule(ip_range: str, port: int | None = 22, **extra: Any) -> dict[str, Any]:
    """A rule as the API returns it (SecurityGroupRule)."""
    return {
        "id": str(uuid.uuid4()),
        "protocol": "TCP",
        "direction": "inbound",
        "action": "accept",
        "ip_range": ip_range,
        "dest_port_from": port,
        "dest_port_to": None,
        "position": 0,
        "editable": True,
        "zone": ZONE,
        **extra,
    }


class FakeInstanceAPI:
    """The state behind the fake: rules per security group, the calls made, a forced error."""

    def __init__(self) -> None:
        self.groups: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.deny = False
        self.runner_ip = RUNNER
        self.lock = threading.Lock()

    def reset(self) -> None:
        # What Terraform's inline rules leave: web from anywhere, SSH from the admin range.
        self.groups = {
            EDGE: [rule("0.0.0.0/0", 80), rule("0.0.0.0/0", 443), rule(ADMIN)],
            BACKEND: [rule(ADMIN)],
        }
        self.calls = []
        self.deny = False
        self.runner_ip = RUNNER

    def ssh_ranges(self, group: str) -> list[str]:
        return sorted(r["ip_range"] for r in self.groups[group] if r["dest_port_from"] == 22)


def handler(state: FakeInstanceAPI) -> type[BaseHTTPRequestHandler]:
    prefix = f"/instance/v1/zones/{ZONE}/security_groups/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            with state.lock:
                state.calls.append((method, url.path))
                if url.path == "/ip":
                    data = state.runner_ip.encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if self.headers.get("X-Auth-Token") != TOKEN:
                    return self._send(401, {"message": "authentication is denied",
                                            "type": "denied_authentication"})  # fmt: skip
                if state.deny:
                    return self._send(403, {"message": "insufficient permissions",
                                            "type": "permissions_denied",
                                            "details": [{"resource": "instance",
                                                         "action": "write"}]})  # fmt: skip
                if not url.path.startswith(prefix):
                    return self._send(404, {"message": "unknown path", "type": "not_found"})
                parts = url.path[len(prefix) :].split("/")
                group = parts[0]
                if group not in state.groups or parts[1:2] != ["rules"]:
                    return self._send(404, {"message": "resource is not found",
                                            "resource": "instance_security_group",
                                            "resource_id": group, "type": "not_found"})  # fmt: skip
                rules = state.groups[group]
                if method == "GET" and len(parts) == 2:
                    query = parse_qs(url.query)
                    per_page = int(query.get("per_page", ["50"])[0])
                    page = int(query.get("page", ["1"])[0])
                    chunk = rules[(page - 1) * per_page : page * per_page]
                    return self._send(200, {"rules": chunk, "total_count": len(rules)})
                if method == "POST" and len(parts) == 2:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    if body.get("direction") not in ("inbound", "outbound"):
                        return self._send(400, {"message": "invalid argument(s)",
                                                "type": "invalid_arguments"})  # fmt: skip
                    created = rule(body["ip_range"], body.get("dest_port_from"),
                                   protocol=body["protocol"], direction=body["direction"],
                                   action=body["action"], position=len(rules) + 1)  # fmt: skip
                    rules.append(created)
                    return self._send(201, {"rule": created})
                if method == "DELETE" and len(parts) == 3:
                    kept = [r for r in rules if r["id"] != parts[2]]
                    if len(kept) == len(rules):
                        missing = {"message": "resource is not found", "type": "not_found",
                                   "resource": "instance_security_group_rule"}  # fmt: skip
                        return self._send(404, {**missing, "resource_id": parts[2]})
                    state.groups[group] = kept
                    return self._send(204)
                return self._send(405, {"message": "method not allowed", "type": "invalid_request"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeInstanceAPI, str]]:
    state = FakeInstanceAPI()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def api(server: tuple[FakeInstanceAPI, str]) -> tuple[FakeInstanceAPI, str]:
    server[0].reset()
    return server


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Terraform's outputs as `make -s infra-output` prints them (the parts the script reads)."""
    inventory = json.loads(
        (ROOT / "tests" / "ansible" / "terraform-inventory.prod.json").read_text()
    )
    path = tmp_path_factory.mktemp("outputs") / "outputs.json"
    path.write_text(json.dumps({
        "security_groups": {"sensitive": False, "type": ["object", {}],
                            "value": {"zone": ZONE, "bastion": EDGE, "all": [EDGE, BACKEND]}},
        "ansible_inventory": {"sensitive": False, "value": inventory},
    }))  # fmt: skip
    return path


def ci_access(base: str, outputs: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("SCW_", "TF_VAR_", "GITHUB_"))
    }
    environ.update({"SCW_API_URL": base, "SCW_SECRET_KEY": TOKEN, **env})
    return subprocess.run(
        [sys.executable, "-m", "scripts.ci_access", *args, "--outputs", str(outputs)],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_open_twice_makes_one_rule_on_the_bastion_only(
    api: tuple[FakeInstanceAPI, str], outputs: Path, tmp_path: Path
) -> None:
    state, base = api
    github_output = tmp_path / "github_output"
    first = ci_access(base, outputs, "open", "--ip", RUNNER, "--wait", "0",
                      GITHUB_OUTPUT=str(github_output))  # fmt: skip
    assert first.returncode == 0, first.stderr
    rule_id = first.stdout.strip()
    assert state.ssh_ranges(EDGE) == sorted([ADMIN, f"{RUNNER}/32"])
    assert state.ssh_ranges(BACKEND) == [ADMIN]  # service hosts stay closed
    created = next(r for r in state.groups[EDGE] if r["ip_range"] == f"{RUNNER}/32")
    assert created["id"] == rule_id
    assert (created["protocol"], created["direction"], created["action"]) == (
        "TCP", "inbound", "accept")  # fmt: skip
    assert f"ip={RUNNER}\nrule_id={rule_id}\n" == github_output.read_text()
    assert "opened SSH from 20.55.14.7/32" in first.stderr

    again = ci_access(base, outputs, "open", "--ip", RUNNER, "--wait", "0")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == rule_id and "already open" in again.stderr
    assert state.ssh_ranges(EDGE) == sorted([ADMIN, f"{RUNNER}/32"])
    assert sum(1 for method, _ in state.calls if method == "POST") == 1


def test_open_learns_the_runners_own_public_address(
    api: tuple[FakeInstanceAPI, str], outputs: Path
) -> None:
    state, base = api
    done = ci_access(base, outputs, "open", "--ip-url", f"{base}/ip", "--wait", "0")
    assert done.returncode == 0, done.stderr
    assert f"{RUNNER}/32" in state.ssh_ranges(EDGE)
    # A private or malformed answer is refused before any rule is written.
    state.reset()
    for answer in ("10.1.2.3", "<html>rate limited</html>", "2001:db8::1"):
        state.runner_ip = answer
        refused = ci_access(base, outputs, "open", "--ip-url", f"{base}/ip", "--wait", "0")
        assert refused.returncode == 2, refused.stderr
        assert "public IPv4" in refused.stderr or "not an IPv4" in refused.stderr
    assert state.ssh_ranges(EDGE) == [ADMIN]


def test_close_removes_only_that_range_even_without_the_rule_id(
    api: tuple[FakeInstanceAPI, str], outputs: Path
) -> None:
    state, base = api
    for ip in (RUNNER, OTHER):
        assert ci_access(base, outputs, "open", "--ip", ip, "--wait", "0").returncode == 0
    # A second identical rule (two runs of a dead job that reopened it): both go.
    state.groups[EDGE].append(rule(f"{RUNNER}/32"))
    # A rule of the same range on another port is not ours to remove.
    state.groups[EDGE].append(rule(f"{RUNNER}/32", 8080))
    done = ci_access(base, outputs, "close", "--ip", RUNNER)
    assert done.returncode == 0, done.stderr
    assert "2 rule(s) removed" in done.stderr
    assert state.ssh_ranges(EDGE) == sorted([ADMIN, f"{OTHER}/32"])
    assert any(r["dest_port_from"] == 8080 for r in state.groups[EDGE])
    # Closing what is already closed is fine (the always() step after a failed open).
    again = ci_access(base, outputs, "close", "--ip", RUNNER)
    assert again.returncode == 0 and "0 rule(s) removed" in again.stderr


def test_sweep_keeps_the_admin_ranges_and_the_web_rules(
    api: tuple[FakeInstanceAPI, str], outputs: Path
) -> None:
    state, base = api
    state.groups[EDGE] += [rule(f"{RUNNER}/32"), rule(f"{OTHER}/32")]
    state.groups[BACKEND].append(rule("192.0.2.0/24"))
    # More rules than one page holds: every page is read.
    state.groups[EDGE] += [rule(f"192.0.2.{i}/32", 9000 + i) for i in range(120)]
    done = ci_access(base, outputs, "sweep", TF_VAR_admin_cidrs=json.dumps([ADMIN]))
    assert done.returncode == 0, done.stderr
    assert state.ssh_ranges(EDGE) == [ADMIN]
    assert state.ssh_ranges(BACKEND) == [ADMIN]
    assert {r["dest_port_from"] for r in state.groups[EDGE]} >= {80, 443, 9119}
    assert "3 rule(s) removed, 2 group(s) checked" in done.stderr
    # --keep wins over the variable; an unnormalised CIDR still matches.
    state.groups[EDGE].append(rule(f"{RUNNER}/32"))
    kept = ci_access(base, outputs, "sweep", "--keep", json.dumps([ADMIN, f"{RUNNER}/32"]),
                     TF_VAR_admin_cidrs="[]")  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert f"{RUNNER}/32" in state.ssh_ranges(EDGE)


def test_sweep_refuses_without_admin_ranges(
    api: tuple[FakeInstanceAPI, str], outputs: Path, tmp_path: Path
) -> None:
    state, base = api
    state.groups[EDGE].append(rule(f"{RUNNER}/32"))
    bare = tmp_path / "bare.json"  # the security groups alone: no inventory to fall back on
    bare.write_text(json.dumps({"zone": ZONE, "bastion": EDGE, "all": [EDGE, BACKEND]}))
    for path, env in ((bare, {}), (outputs, {"TF_VAR_admin_cidrs": "[]"}),
                      (outputs, {"TF_VAR_admin_cidrs": "not json"})):  # fmt: skip
        done = ci_access(base, path, "sweep", **env)
        assert done.returncode == 2, (env, done.stderr)
    assert not [c for c in state.calls if c[0] == "DELETE"]
    # Without TF_VAR_admin_cidrs, the admin ranges of the applied configuration (the inventory).
    done = ci_access(base, outputs, "sweep")
    assert done.returncode == 0, done.stderr
    assert state.ssh_ranges(EDGE) == [ADMIN]


def test_a_dry_run_sweep_lists_and_removes_nothing(
    api: tuple[FakeInstanceAPI, str], outputs: Path
) -> None:
    """What the prod check runs with the read-only plan key: exit 3 names what is left open."""
    state, base = api
    clean = ci_access(base, outputs, "sweep", "--dry-run")
    assert clean.returncode == 0 and "0 rule(s) to remove (dry run)" in clean.stderr, clean.stderr
    state.groups[BACKEND].append(rule(f"{RUNNER}/32"))
    left = ci_access(base, outputs, "sweep", "--dry-run")
    assert left.returncode == 3, left.stderr
    assert "would remove rule" in left.stderr and f"SSH from {RUNNER}/32" in left.stderr
    assert state.ssh_ranges(BACKEND) == sorted([ADMIN, f"{RUNNER}/32"])
    assert not [c for c in state.calls if c[0] == "DELETE"]


def test_api_errors_are_reported_clearly(api: tuple[FakeInstanceAPI, str], outputs: Path) -> None:
    state, base = api
    state.deny = True
    denied = ci_access(base, outputs, "open", "--ip", RUNNER, "--wait", "0")
    assert denied.returncode == 1
    assert "FAIL" in denied.stderr and "HTTP 403: insufficient permissions" in denied.stderr
    assert "SCW_SECRET_KEY" in denied.stderr  # the hint: which key to check
    state.deny = False
    wrong_key = ci_access(base, outputs, "close", "--ip", RUNNER, SCW_SECRET_KEY="nope")
    assert wrong_key.returncode == 1 and "HTTP 401: authentication is denied" in wrong_key.stderr
    missing = ci_access(base, outputs, "open", "--ip", RUNNER, SCW_SECRET_KEY="")
    assert missing.returncode == 2 and "SCW_SECRET_KEY is not set" in missing.stderr
    nowhere = ci_access("http://127.0.0.1:9", outputs, "close", "--ip", RUNNER)
    assert nowhere.returncode == 1 and "FAIL" in nowhere.stderr


def test_outputs_without_security_groups_say_what_is_missing(
    api: tuple[FakeInstanceAPI, str], tmp_path: Path
) -> None:
    _, base = api
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"registry_endpoint": {"value": "rg.fr-par.scw.cloud/cepage-dev"}}))
    done = ci_access(base, old, "open", "--ip", RUNNER)
    assert done.returncode == 2 and "no security_groups output" in done.stderr
    # The bare value (a copy of `.security_groups.value`) is accepted too.
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"zone": ZONE, "bastion": EDGE, "all": [EDGE]}))
    ok = ci_access(base, bare, "open", "--ip", RUNNER)
    assert ok.returncode == 0, ok.stderr
