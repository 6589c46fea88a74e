"""The alert-driven retrain with real processes: a real Alertmanager, configured by
monitoring/alertmanager/render.py, delivers alerts to the real receiver (`python -m cli.trigger
serve`), which runs a command that appends the reason to a file; and the github mode's dispatch
against a local stand-in for GitHub's API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from stack.monitoring import find_binary
from tests.support.procs import ROOT, free_port, require, require_binary, running, stack_env

pytestmark = pytest.mark.monitoring

RENDER = ROOT / "monitoring" / "alertmanager" / "render.py"
TOKEN = "retrain-token-for-the-test"  # pragma: allowlist secret


def receiver_argv(port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "cli.trigger", "serve", "--host", "127.0.0.1",
            "--port", str(port), *options]  # fmt: skip


def render(tmp_path: Path, webhook: str, token_file: Path) -> Path:
    """render.py's configuration with the retrain receiver, timed for a test: groups sent after
    1 s, re-sent every 2 s (so Alertmanager keeps re-delivering within the cooldown)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "CEPAGE_ALERT_RETRAIN_WEBHOOK_URL": webhook,
        "CEPAGE_ALERT_RETRAIN_WEBHOOK_TOKEN_FILE": str(token_file),
    }
    done = subprocess.run(
        ["python3", str(RENDER)], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    config = json.loads(done.stdout)
    retrain = next(r for r in config["route"]["routes"] if r.get("receiver") == "retrain")
    assert retrain["continue"] is True
    retrain.update(group_wait="1s", group_interval="1s", repeat_interval="2s")
    path = tmp_path / "alertmanager.yml"
    path.write_text(json.dumps(config))
    return path


@contextmanager
def alertmanager(tmp_path: Path, config: Path) -> Iterator[str]:
    binary = find_binary("alertmanager", "prometheus-alertmanager")
    require(binary is not None, "Alertmanager (`prometheus-alertmanager`) is not installed")
    assert binary is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]  # fmt: skip
    with running(argv, log=tmp_path / "alertmanager.log", ready_url=f"{url}/-/ready", timeout=60):
        yield url


def post_alerts(url: str, *alerts: tuple[str, dict[str, str]]) -> None:
    """Fire alerts through Alertmanager's API, as Prometheus does."""
    now = datetime.now(UTC)
    body = [
        {
            "labels": {"alertname": name, "job": "cepage-service", "severity": "warning", **labels},
            "annotations": {"summary": f"{name} on {labels.get('feature', 'the model')}"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=10)).isoformat(),
        }
        for name, labels in alerts
    ]
    response = requests.post(f"{url}/api/v2/alerts", json=body, timeout=10)
    assert response.status_code == 200, response.text


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def deliveries(log: Path, why: str) -> int:
    return log.read_text().count(why) if log.is_file() else 0


def test_alertmanager_deliveries_start_exactly_one_retrain_per_cooldown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    retrains = tmp_path / "retrains.txt"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    config = render(tmp_path, f"http://127.0.0.1:{port}/webhook", token_file)
    env = stack_env(
        home,
        # Alertmanager routes CepageLowFeedbackAccuracy here too; this receiver ignores it.
        CEPAGE_TRIGGER_ALERTS="CepageFeatureDrift",
        CEPAGE_TRIGGER_TOKEN_FILE=str(token_file),
    )
    command = f'sh -c \'printf "%s\\n" "$CEPAGE_RETRAIN_REASON" >> {retrains}\''
    argv = receiver_argv(port, "--cooldown-seconds", "3600", "--command", command)
    log = tmp_path / "trigger.log"
    ready = f"http://127.0.0.1:{port}/healthz"
    with alertmanager(tmp_path, config) as am:
        with running(argv, log=log, ready_url=ready, env=env, timeout=60):
            # Not allow-listed: one routed to the receiver and ignored there, one never routed.
            post_alerts(am, ("CepageLowFeedbackAccuracy", {"model_version": "1"}),
                        ("HostMemoryPressure", {"instance": "host:9100"}))  # fmt: skip
            wait_for(lambda: deliveries(log, "no allow-listed firing alert") >= 2, 30,
                     "the ignored alert delivered, then re-sent")  # fmt: skip
            assert not retrains.exists(), "a non-allow-listed alert started a retrain"
            # Four drifting features in two groups (by job), delivered at once: one retrain.
            drift = "CepageFeatureDrift"
            post_alerts(am, (drift, {"feature": "proline", "model_version": "1"}),
                        (drift, {"feature": "alcohol", "model_version": "1"}))  # fmt: skip
            post_alerts(am, (drift, {"feature": "hue", "model_version": "1"}),
                        (drift, {"feature": "ash", "job": "cepage-baseline"}))  # fmt: skip
            wait_for(retrains.exists, 30, "the retrain command")
            # Alertmanager re-sends every 2 s: each re-delivery meets the cooldown.
            wait_for(lambda: deliveries(log, "cooldown") >= 3, 30, "re-deliveries")
        # A restarted receiver keeps the cooldown (the state is a file).
        with running(argv, log=log, ready_url=ready, env=env, timeout=60):
            before = deliveries(log, "cooldown")
            wait_for(lambda: deliveries(log, "cooldown") >= before + 2, 30, "re-deliveries")
    lines = retrains.read_text().splitlines()
    assert len(lines) == 1, lines
    reason = json.loads(lines[0])
    assert reason["alertnames"] == ["CepageFeatureDrift"]
    assert "CepageFeatureDrift" in reason["summary"]
    features = {a["labels"]["feature"] for a in reason["alerts"]}
    assert features <= {"proline", "alcohol", "hue", "ash"} and features
    assert all(a["fingerprint"] and a["starts_at"] for a in reason["alerts"])
    status = subprocess.run(
        [sys.executable, "-m", "cli.trigger", "status", "--json"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    shown = json.loads(status.stdout)
    assert shown["last"]["reason"] == reason
    assert shown["last"]["exit_code"] == 0
    assert 3000 < shown["cooldown_remaining_seconds"] <= 3600
    human = subprocess.run(
        [sys.executable, "-m", "cli.trigger", "status"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "Why: CepageFeatureDrift" in human.stdout and "Cooldown: 5" in human.stdout


class FakeGitHub(BaseHTTPRequestHandler):
    """GitHub's dispatch endpoint: records each request, answers what ``answers`` holds."""

    seen: ClassVar[list[dict[str, Any]]] = []
    answers: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        FakeGitHub.seen.append(
            {"path": self.path, "headers": dict(self.headers),
             "body": json.loads(self.rfile.read(length))}
        )  # fmt: skip
        code = FakeGitHub.answers.pop(0) if FakeGitHub.answers else 204
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def fake_github() -> Iterator[str]:
    FakeGitHub.seen, FakeGitHub.answers = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def delivery(*features: str) -> dict[str, Any]:
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "CepageFeatureDrift", "feature": f, "job": "cepage-service"},
            "annotations": {"summary": f"Inputs of {f} have drifted (PSI 0.31)."},
            "startsAt": "2026-11-30T10:00:00Z",
            "fingerprint": f"fp{f}",
        }
        for f in features
    ]
    return {"version": "4", "status": "firing", "receiver": "retrain", "groupKey": "g",
            "groupLabels": {}, "commonLabels": {}, "alerts": alerts}  # fmt: skip


def test_the_github_mode_dispatches_the_retrain_workflow(tmp_path: Path) -> None:
    token_file = tmp_path / "github-token"
    token_file.write_text("github_pat_for_the_test\n")  # pragma: allowlist secret
    port = free_port()
    with fake_github() as api:
        env = stack_env(
            tmp_path / "home",
            CEPAGE_TRIGGER_MODE="github",
            CEPAGE_TRIGGER_GITHUB_REPOSITORY="acme/cepage",
            CEPAGE_TRIGGER_GITHUB_TOKEN_FILE=str(token_file),
            CEPAGE_TRIGGER_GITHUB_API_URL=api,
        )
        url = f"http://127.0.0.1:{port}"
        argv = receiver_argv(port, "--cooldown-seconds", "3600")
        log = tmp_path / "trigger.log"
        with running(argv, log=log, ready_url=f"{url}/healthz", env=env, timeout=60):
            FakeGitHub.answers = [500]  # GitHub fails once: Alertmanager is told to retry
            failed = requests.post(f"{url}/webhook", json=delivery("proline"), timeout=30)
            assert failed.status_code == 502, failed.text
            started = requests.post(f"{url}/webhook", json=delivery("proline", "hue"), timeout=30)
            assert started.status_code == 202, started.text
            again = requests.post(f"{url}/webhook", json=delivery("ash"), timeout=30)
            assert again.json()["why"] == "cooldown"
    assert len(FakeGitHub.seen) == 2, "one failed dispatch, one that worked, none in cooldown"
    request = FakeGitHub.seen[1]
    assert request["path"] == "/repos/acme/cepage/actions/workflows/retrain.yml/dispatches"
    assert request["headers"]["Authorization"] == "Bearer github_pat_for_the_test"
    assert request["headers"]["Accept"] == "application/vnd.github+json"
    assert request["body"]["ref"] == "main" and set(request["body"]) == {"ref", "inputs"}
    reason = json.loads(request["body"]["inputs"]["reason"])
    assert reason["alertnames"] == ["CepageFeatureDrift"]
    assert [a["labels"]["feature"] for a in reason["alerts"]] == ["proline", "hue"]
    assert "PSI 0.31" in reason["summary"]
    assert "github_pat_for_the_test" not in log.read_text(), "the token never reaches the log"


def test_the_local_stack_runs_the_receiver_beside_alertmanager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cepage up`'s plan: with Alertmanager installed, the receiver is planned too, and the
    rendered configuration sends the retrain alerts to it; the planned command serves."""
    from stack.monitoring import monitoring_plan, prepare_monitoring
    from train.settings import load_settings

    require(
        find_binary("alertmanager", "prometheus-alertmanager") is not None,
        "Alertmanager (`prometheus-alertmanager`) is not installed",
    )
    port = free_port()
    env = stack_env(tmp_path, CEPAGE_TRIGGER_PORT=str(port), CEPAGE_TRIGGER_TOKEN=TOKEN)
    env = {k: v for k, v in env.items() if not k.startswith("CEPAGE_ALERT_")}
    for name in [n for n in os.environ if n.startswith("CEPAGE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():  # the stack reads the process's environment
        monkeypatch.setenv(name, value)
    settings = load_settings()
    planned = {name: (argv, p, health) for name, argv, p, health in monitoring_plan(settings)}
    assert planned["trigger"][1:] == (port, "/healthz")
    prepare_monitoring(settings, ROOT, {name: p for name, (_, p, _) in planned.items()})
    monkeypatch.setenv("CEPAGE_TRIGGER_MODE", "off")
    assert "trigger" not in {p[0] for p in monitoring_plan(settings)}
    config = json.loads((tmp_path / "alertmanager" / "alertmanager.yml").read_text())
    (receiver,) = [r for r in config["receivers"] if r["name"] == "retrain"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == f"http://127.0.0.1:{port}/webhook"
    token_file = Path(webhook["http_config"]["authorization"]["credentials_file"])
    assert token_file.read_text() == TOKEN and token_file.stat().st_mode & 0o077 == 0
    argv = planned["trigger"][0]
    url = f"http://127.0.0.1:{port}"
    with running(argv, log=tmp_path / "trigger.log", ready_url=f"{url}/healthz", env=env):
        assert requests.get(f"{url}/status", timeout=5).status_code == 401
        authorized = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(f"{url}/status", headers=authorized, timeout=5).json()["last"] is None


@pytest.mark.parametrize("with_trigger", [False, True], ids=["no-trigger", "trigger"])
def test_the_retrain_route_adds_a_receiver_and_people_still_get_the_alerts(
    tmp_path: Path, with_trigger: bool
) -> None:
    amtool = require_binary("amtool")
    env = {"PATH": "/usr/bin:/bin", "CEPAGE_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    if with_trigger:
        env["CEPAGE_ALERT_RETRAIN_WEBHOOK_URL"] = "http://127.0.0.1:9095/webhook"
    out = tmp_path / "alertmanager.yml"
    done = subprocess.run(["python3", str(RENDER), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    check = subprocess.run([amtool, "check-config", str(out)],
                           capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    retrain = "retrain," if with_trigger else ""
    expected = {
        "alertname=CepageFeatureDrift severity=warning": f"{retrain}team",
        "alertname=CepageLowFeedbackAccuracy severity=warning": f"{retrain}team",
        "alertname=CepageLowFeedbackAccuracy severity=critical": f"{retrain}oncall",
        "alertname=CepageFeatureMissingValues severity=warning": "team",
        "alertname=HostMemoryPressure severity=warning": "team",
        "alertname=CepageServiceDown severity=critical": "oncall",
    }
    for labels, receivers in expected.items():
        route = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={out}", *labels.split()],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert route.stdout.strip() == receivers, (labels, route.stdout + route.stderr)
    names = [r["name"] for r in json.loads(out.read_text())["receivers"]]
    assert ("retrain" in names) is with_trigger
