"""The compose stack's target discovery: one Prometheus target per service replica."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.docker.test_config import BASE, COMPOSE, rendered

SCRIPT = COMPOSE / "prometheus-targets" / "discover.py"


def discover() -> ModuleType:
    spec = importlib.util.spec_from_file_location("discover", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_once(
    out: Path, name: str, static: Path = SCRIPT.parent
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT), "--static", str(static), "--out", str(out)]
    argv += ["--name", name, "--port", "3000", "--once"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)


def test_writes_one_target_per_address_and_copies_the_static_targets(tmp_path: Path) -> None:
    run_once(tmp_path, "localhost")
    service = json.loads((tmp_path / "service.json").read_text())
    assert service == [{"targets": ["127.0.0.1:3000"], "labels": {"service": "cepage"}}]
    static = {p.name for p in SCRIPT.parent.glob("*.json")}
    assert static and static <= {p.name for p in tmp_path.glob("*.json")}
    assert not list(tmp_path.glob("*.tmp"))


def test_an_unresolvable_name_keeps_the_previous_targets(tmp_path: Path) -> None:
    run_once(tmp_path, "localhost")
    before = (tmp_path / "service.json").read_text()
    done = run_once(tmp_path, "no-such-replica.invalid")
    assert "does not resolve" in done.stdout
    assert (tmp_path / "service.json").read_text() == before


def test_no_replica_yet_means_an_empty_target_list(tmp_path: Path) -> None:
    run_once(tmp_path, "no-such-replica.invalid")
    assert json.loads((tmp_path / "service.json").read_text()) == []


def test_a_static_service_file_from_ansible_wins_over_discovery(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    given = [{"targets": ["10.0.0.5:3000", "10.0.0.6:3000"], "labels": {"service": "cepage"}}]
    (static / "service.json").write_text(json.dumps(given))
    done = run_once(tmp_path / "out", "localhost", static=static)
    assert "not resolving" in done.stdout
    assert json.loads((tmp_path / "out" / "service.json").read_text()) == given


def test_several_addresses_become_several_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    module = discover()
    answers = [(2, 1, 6, "", (ip, 3000)) for ip in ("172.18.0.9", "172.18.0.10", "172.18.0.9")]
    monkeypatch.setattr(module.socket, "getaddrinfo", lambda *a, **k: answers)
    assert module.resolve("service", 3000) == ["172.18.0.9", "172.18.0.10"]


def test_compose_runs_discovery_for_the_service_on_its_port() -> None:
    services = rendered(BASE)["services"]
    command = services["prometheus-targets"]["command"]
    name = command[command.index("--name") + 1]
    port = command[command.index("--port") + 1]
    assert name in services
    assert f":{port}/" in " ".join(services[name]["healthcheck"]["test"])
    prometheus = services["prometheus"]
    assert prometheus["depends_on"]["prometheus-targets"]["condition"] == "service_healthy"
    assert "prometheus-targets:/etc/prometheus/targets:ro" in prometheus["volumes"]
