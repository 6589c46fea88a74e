"""The retrain trigger's logic (stack/retrain_trigger.py): payload, allow-list, cooldown, lock,
the record of why, settings; and its HTTP answers on a real socket."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from stack.retrain_trigger import (
    REASON_ENV,
    REASON_MAX_CHARS,
    CommandStarter,
    GitHubStarter,
    PayloadError,
    StartError,
    Trigger,
    TriggerSettings,
    build_reason,
    encode,
    load_trigger_settings,
    make_server,
    parse_delivery,
    read_state,
    status,
    triggering,
)


def alert(name: str = "CepageFeatureDrift", state: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": state,
        "labels": {"alertname": name, "job": "cepage-service", "severity": "warning", **labels},
        "annotations": {"summary": f"{name} summary", "description": "long text"},
        "startsAt": "2026-11-30T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": f"fp-{name}-{labels.get('feature', '')}",
    }


def payload(*alerts: dict[str, Any], state: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}/{alertname=~"CepageFeatureDrift"}:{alertname="CepageFeatureDrift"}',
        "truncatedAlerts": 0,
        "status": state,
        "receiver": "retrain",
        "groupLabels": {"alertname": "CepageFeatureDrift"},
        "commonLabels": {"alertname": "CepageFeatureDrift"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def body(*alerts: dict[str, Any], state: str = "firing") -> bytes:
    return json.dumps(payload(*alerts, state=state)).encode()


class FakeStarter:
    """Records every start; ``fail`` makes the next start raise; ``pause`` widens the race."""

    def __init__(self, pause: float = 0.0) -> None:
        self.reasons: list[dict[str, Any]] = []
        self.fail = False
        self.pause = pause

    def start(self, reason: dict[str, Any], on_exit: Callable[[int], None]) -> dict[str, Any]:
        time.sleep(self.pause)
        if self.fail:
            self.fail = False
            raise StartError("GitHub answered 500")
        self.reasons.append(reason)
        return {"command": "fake"}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, starter: FakeStarter, clock: Clock, **options: Any) -> Trigger:
    settings = TriggerSettings(state_dir=tmp_path / "trigger", cooldown_seconds=3600, **options)
    return Trigger(settings, starter, clock)


# --- payload and allow-list ----------------------------------------------------------------------


def test_a_payload_is_read_with_its_alerts() -> None:
    delivery = parse_delivery(body(alert(feature="proline"), alert("CepageLowFeedbackAccuracy")))
    assert delivery.status == "firing" and delivery.receiver == "retrain"
    first = delivery.alerts[0]
    assert first.name == "CepageFeatureDrift" and first.labels["feature"] == "proline"
    assert first.fingerprint == "fp-CepageFeatureDrift-proline"
    assert first.starts_at == "2026-11-30T10:00:00Z"
    assert first.annotations["summary"] == "CepageFeatureDrift summary"


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"\xff\xfe", b"[]", b'{"alerts": {}}', b'{"status": "firing"}',
     b'{"alerts": [1]}', b'{"alerts": [{"labels": []}]}'],
    ids=["broken", "not-utf8", "a-list", "alerts-object", "no-alerts", "alert-number",
         "labels-list"],
)  # fmt: skip
def test_a_malformed_payload_is_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_delivery(raw)


def test_only_firing_allow_listed_alerts_trigger() -> None:
    delivery = parse_delivery(
        body(
            alert(feature="a"),
            alert(state="resolved", feature="b"),
            alert("HostMemoryPressure"),
            alert("CepageFeatureMissingValues", feature="c"),
        )
    )
    found = triggering(delivery, ("CepageFeatureDrift", "CepageLowFeedbackAccuracy"))
    assert [(a.name, a.labels["feature"]) for a in found] == [("CepageFeatureDrift", "a")]


def test_the_default_allow_list_names_alerts_the_rules_define() -> None:
    from stack.retrain_trigger import DEFAULT_ALERTS
    from tests.monitoring.test_config import alert_rules

    assert set(DEFAULT_ALERTS) <= set(alert_rules())


# --- the reason ---------------------------------------------------------------------------------


def test_the_reason_names_the_alerts_their_labels_values_and_time() -> None:
    drift = alert(feature="proline", model_version="3")
    drift["annotations"]["value"] = "0.31"
    delivery = parse_delivery(body(drift))
    reason = build_reason(delivery, triggering(delivery, ("CepageFeatureDrift",)), 1.8e9)
    assert reason["version"] == 1 and reason["trigger"] == "alertmanager"
    assert reason["at"] == "2027-01-15T08:00:00Z"
    assert reason["alertnames"] == ["CepageFeatureDrift"]
    (item,) = reason["alerts"]
    assert item["labels"]["feature"] == "proline" and item["value"] == "0.31"
    assert item["fingerprint"] == "fp-CepageFeatureDrift-proline"
    assert item["starts_at"] == "2026-11-30T10:00:00Z"
    assert reason["summary"] == (
        "CepageFeatureDrift (feature=proline, job=cepage-service, model_version=3): "
        "CepageFeatureDrift summary"
    )
    assert json.loads(encode(reason)) == reason


def test_a_long_reason_is_bounded_and_says_what_it_left_out() -> None:
    many = [alert(feature=f"feature_{i:03d}") for i in range(200)]
    for item in many:
        item["annotations"]["description"] = "x" * 500
    delivery = parse_delivery(body(*many))
    reason = build_reason(delivery, triggering(delivery, ("CepageFeatureDrift",)), 1.8e9)
    assert len(encode(reason)) <= REASON_MAX_CHARS
    assert reason["more_alerts"] == 200 - len(reason["alerts"]) > 0
    assert all("description" not in a["annotations"] for a in reason["alerts"])


# --- cooldown, state, lock ----------------------------------------------------------------------


def test_one_retrain_per_cooldown_and_a_restart_keeps_it(tmp_path: Path) -> None:
    starter, clock = FakeStarter(), Clock()
    trigger = make(tmp_path, starter, clock)
    first = trigger.handle(parse_delivery(body(alert(feature="a"))))
    assert (first.started, first.status) == (True, 202)
    clock.now += 1800
    again = trigger.handle(parse_delivery(body(alert("CepageLowFeedbackAccuracy"))))
    assert (again.started, again.why, again.status) == (False, "cooldown", 200)
    assert again.detail["cooldown_remaining_seconds"] == 1800
    restarted = make(tmp_path, starter, clock)  # a new process reads the same state file
    assert restarted.handle(parse_delivery(body(alert(feature="b")))).why == "cooldown"
    clock.now += 1801
    assert restarted.handle(parse_delivery(body(alert(feature="b")))).started
    assert [r["alerts"][0]["labels"].get("feature") for r in starter.reasons] == ["a", "b"]
    state = read_state(tmp_path / "trigger" / "state.json")
    assert state["last_started_at"] == clock.now
    assert [h["reason"]["at"] for h in state["history"]] == [
        r["at"] for r in reversed(starter.reasons)
    ]


def test_resolved_and_unknown_alerts_start_nothing(tmp_path: Path) -> None:
    starter = FakeStarter()
    trigger = make(tmp_path, starter, Clock())
    resolved = trigger.handle(parse_delivery(body(alert(state="resolved"), state="resolved")))
    unknown = trigger.handle(parse_delivery(body(alert("HostMemoryPressure"))))
    assert (resolved.why, unknown.why) == ("resolved", "no allow-listed firing alert")
    assert starter.reasons == [] and not (tmp_path / "trigger" / "state.json").exists()


def test_concurrent_deliveries_start_exactly_one_retrain(tmp_path: Path) -> None:
    """Twenty deliveries at once, through two Trigger objects (two receivers on one home: the
    file lock, not only the thread lock)."""
    starter, clock = FakeStarter(pause=0.05), Clock()
    triggers = [make(tmp_path, starter, clock), make(tmp_path, starter, clock)]
    barrier = threading.Barrier(20)
    decisions: list[bool] = []

    def deliver(index: int) -> None:
        barrier.wait()
        decision = triggers[index % 2].handle(parse_delivery(body(alert(feature=str(index)))))
        decisions.append(decision.started)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(decisions) == [False] * 19 + [True]
    assert len(starter.reasons) == 1


def test_a_failed_start_does_not_use_the_cooldown(tmp_path: Path) -> None:
    starter, clock = FakeStarter(), Clock()
    trigger = make(tmp_path, starter, clock)
    starter.fail = True
    failed = trigger.handle(parse_delivery(body(alert())))
    assert (failed.started, failed.status) == (False, 502)
    state = read_state(tmp_path / "trigger" / "state.json")
    assert state["last_started_at"] is None and state["last"] is None
    assert "GitHub answered 500" in state["last_failure"]["error"]
    assert trigger.handle(parse_delivery(body(alert()))).started


def test_a_running_retrain_blocks_another_whatever_the_cooldown(tmp_path: Path) -> None:
    clock = Clock()
    settings = TriggerSettings(
        state_dir=tmp_path / "trigger",
        cooldown_seconds=0,
        command=(sys.executable, "-c", "import time; time.sleep(30)"),
    )
    trigger = Trigger(settings, CommandStarter(settings.command, tmp_path / "logs"), clock)
    assert trigger.handle(parse_delivery(body(alert()))).started
    try:
        blocked = trigger.handle(parse_delivery(body(alert())))
        assert blocked.why == "running"
        assert status(settings, clock.now)["running"] is True
    finally:
        import os
        import signal

        os.killpg(read_state(settings.state_file)["last"]["pid"], signal.SIGKILL)


def test_the_command_gets_the_reason_and_its_exit_code_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "reason.json"
    script = (
        f"import os, pathlib; pathlib.Path({str(out)!r}).write_text(os.environ[{REASON_ENV!r}])"
    )
    settings = TriggerSettings(
        state_dir=tmp_path / "trigger",
        command=(sys.executable, "-c", script + "; raise SystemExit(3)"),
    )
    trigger = Trigger(settings, CommandStarter(settings.command, tmp_path / "logs"))
    assert trigger.handle(parse_delivery(body(alert(feature="proline")))).started
    deadline = time.monotonic() + 30
    while "exit_code" not in (read_state(settings.state_file).get("last") or {}):
        assert time.monotonic() < deadline, "the exit code was never recorded"
        time.sleep(0.05)
    last = read_state(settings.state_file)["last"]
    assert last["exit_code"] == 3 and Path(last["log"]).is_file()
    reason = json.loads(out.read_text())
    assert reason["alertnames"] == ["CepageFeatureDrift"] and reason == last["reason"]
    report = status(settings)
    assert report["running"] is False and report["cooldown_remaining_seconds"] > 0


def test_a_command_that_cannot_run_is_a_failed_start(tmp_path: Path) -> None:
    settings = TriggerSettings(state_dir=tmp_path / "t", command=(str(tmp_path / "missing"),))
    trigger = Trigger(settings, CommandStarter(settings.command, tmp_path / "logs"))
    decision = trigger.handle(parse_delivery(body(alert())))
    assert decision.why == "start failed" and "cannot run" in decision.detail["error"]


def test_the_github_dispatch_request() -> None:
    starter = GitHubStarter("https://api.example.test/", "acme/cepage", "t0ken", "main")
    reason = {"summary": "CepageFeatureDrift", "alerts": []}
    request = starter.request(reason)
    assert request.full_url == (
        "https://api.example.test/repos/acme/cepage/actions/workflows/retrain.yml/dispatches"
    )
    assert request.get_method() == "POST"
    assert request.get_header("Authorization") == "Bearer t0ken"
    assert isinstance(request.data, bytes)
    sent = json.loads(request.data)
    assert sent == {"ref": "main", "inputs": {"reason": encode(reason)}}


# --- settings -----------------------------------------------------------------------------------


def test_settings_from_the_environment(tmp_path: Path) -> None:
    token = tmp_path / "gh"
    token.write_text("ghp-secret\n")
    settings = load_trigger_settings(
        tmp_path,
        {
            "CEPAGE_TRIGGER_MODE": "github",
            "CEPAGE_TRIGGER_PORT": "9999",
            "CEPAGE_TRIGGER_COOLDOWN_SECONDS": "60",
            "CEPAGE_TRIGGER_ALERTS": "CepageFeatureDrift, X",
            "CEPAGE_TRIGGER_COMMAND": "make retrain 'A B'",
            "CEPAGE_TRIGGER_GITHUB_REPOSITORY": "acme/cepage",
            "CEPAGE_TRIGGER_GITHUB_TOKEN_FILE": str(token),
            "CEPAGE_TRIGGER_GITHUB_API_URL": "http://127.0.0.1:1/",
        },
    )
    assert (settings.mode, settings.port, settings.cooldown_seconds) == ("github", 9999, 60)
    assert settings.alerts == ("CepageFeatureDrift", "X")
    assert settings.command == ("make", "retrain", "A B")
    assert settings.github_token == "ghp-secret"
    assert settings.github_api_url == "http://127.0.0.1:1"
    assert settings.state_file == tmp_path / "trigger" / "state.json"
    default = load_trigger_settings(tmp_path, {})
    assert default.mode == "command" and default.cooldown_seconds == 6 * 3600
    assert default.command[1:] == ("retrain", "--from-production")
    assert default.alerts == ("CepageFeatureDrift", "CepageLowFeedbackAccuracy")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CEPAGE_TRIGGER_MODE": "cron"}, "CEPAGE_TRIGGER_MODE must be one of"),
        ({"CEPAGE_TRIGGER_COOLDOWN_SECONDS": "-1"}, "CEPAGE_TRIGGER_COOLDOWN_SECONDS must be"),
        ({"CEPAGE_TRIGGER_MODE": "github", "CEPAGE_TRIGGER_GITHUB_TOKEN": "x"}, "owner/name"),
        ({"CEPAGE_TRIGGER_MODE": "github", "CEPAGE_TRIGGER_GITHUB_REPOSITORY": "a/b"}, "TOKEN"),
    ],
)
def test_wrong_settings_are_one_sentence(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_trigger_settings(tmp_path, environ)


# --- HTTP ---------------------------------------------------------------------------------------


@contextmanager
def receiver(trigger: Trigger) -> Iterator[str]:
    server = make_server(trigger, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_answers(tmp_path: Path) -> None:
    starter = FakeStarter()
    settings = TriggerSettings(state_dir=tmp_path / "t", cooldown_seconds=3600, token="s3cret")
    with receiver(Trigger(settings, starter)) as url:
        hook = f"{url}/webhook"
        auth = {"Authorization": "Bearer s3cret"}
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        assert requests.post(hook, data=body(alert()), timeout=5).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert requests.post(hook, data=body(alert()), headers=wrong, timeout=5).status_code == 401
        assert requests.get(f"{url}/status", timeout=5).status_code == 401
        assert requests.post(f"{url}/other", data=b"{}", headers=auth, timeout=5).status_code == 404
        bad = requests.post(hook, data=b"{oops", headers=auth, timeout=5)
        assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
        ignored = requests.post(hook, data=body(alert("Other")), headers=auth, timeout=5)
        assert ignored.status_code == 200 and ignored.json()["retrain"] is False
        started = requests.post(hook, data=body(alert()), headers=auth, timeout=5)
        assert started.status_code == 202 and started.json()["retrain"] is True
        assert started.json()["reason"]["alertnames"] == ["CepageFeatureDrift"]
        cooled = requests.post(hook, data=body(alert()), headers=auth, timeout=5)
        assert cooled.status_code == 200 and cooled.json()["why"] == "cooldown"
        shown = requests.get(f"{url}/status", headers=auth, timeout=5).json()
        assert shown["last"]["reason"]["alertnames"] == ["CepageFeatureDrift"]
        assert 0 < shown["cooldown_remaining_seconds"] <= 3600
        huge = urllib.request.Request(hook, data=b"x", method="POST", headers=auth)
        huge.add_header("Content-Length", str(10 << 20))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(huge, timeout=5)
        assert refused.value.code == 413
    assert len(starter.reasons) == 1
