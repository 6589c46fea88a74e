"""The alert-driven retrain: a webhook receiver that Alertmanager calls, which starts one retrain.

Alertmanager routes the drift and feedback-accuracy alerts (``monitoring/alertmanager/render.py``,
``CEPAGE_ALERT_RETRAIN_WEBHOOK_URL``) to this receiver. For a delivery that holds a *firing*
alert whose name is in the allow-list, and only when the cooldown since the last started retrain
has passed, it starts exactly one retrain and records why:

- ``command`` mode (``cepage up``, a host): runs ``CEPAGE_TRIGGER_COMMAND`` (default
  ``cepage retrain --from-production``) in the background, the reason in the environment variable
  ``CEPAGE_RETRAIN_REASON`` (JSON, :func:`build_reason`), its output in a log file;
- ``github`` mode (the cloud): dispatches the ``retrain`` workflow through GitHub's API
  (``POST /repos/OWNER/REPO/actions/workflows/retrain.yml/dispatches``) with the reason as its
  ``reason`` input, with a token that may only do that (docs/ci-cd.md).

The decision and the start happen under a lock (a thread lock, and ``flock`` on a file beside the
state, so two receivers on one home agree too), and the state is a JSON file written atomically:
Alertmanager's retries, several alerts in one group and several groups at once start one retrain,
and a restart does not reset the cooldown. Resolved alerts, unknown alert names and malformed
payloads start nothing and are logged. Standard library only (``http.server``), plus the project's
process helper.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import logging
import os
import shlex
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from contracts import env
from contracts.names import RETRAIN_REASON_ENV
from stack.processes import start

LOG = logging.getLogger("cepage.trigger")

# The alerts that may start a retrain (monitoring/prometheus/rules/cepage.alerts.yml): inputs
# unlike the training data, and measured accuracy below 80 %. The missing-value and
# unseen-category alerts are left out by default: they are most often a client's bug, which a
# retrain on the broken inputs would learn.
DEFAULT_ALERTS = ("CepageFeatureDrift", "CepageLowFeedbackAccuracy")
DEFAULT_COOLDOWN_SECONDS = 6 * 3600.0
DEFAULT_PORT = 9095
MODES = ("command", "github", "off")
WORKFLOW = "retrain.yml"
REASON_ENV = RETRAIN_REASON_ENV
WEBHOOK_PATH = "/webhook"
REASON_VERSION = 1
# The reason must fit an MLflow tag (5000 characters) and a workflow input.
REASON_MAX_CHARS = 4000
MAX_BODY_BYTES = 1 << 20
HISTORY = 20
GITHUB_TIMEOUT_S = 15.0


def default_command() -> list[str]:
    """``cepage retrain --from-production``, with this environment's ``cepage``."""
    return [str(Path(sys.executable).parent / "cepage"), "retrain", "--from-production"]


@dataclass(frozen=True)
class TriggerSettings:
    """The receiver's settings (docs/cli.md's table, docs/monitoring.md)."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS
    alerts: tuple[str, ...] = DEFAULT_ALERTS
    mode: str = "command"
    command: tuple[str, ...] = field(default_factory=lambda: tuple(default_command()))
    token: str | None = None
    github_repository: str | None = None
    github_token: str | None = None
    github_api_url: str = "https://api.github.com"
    github_ref: str = "main"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"


def load_trigger_settings(home: Path, environ: Mapping[str, str] | None = None) -> TriggerSettings:
    """The receiver's settings from ``environ`` (default: the process's); state under ``home``.

    Raises:
        ValueError: a value is wrong (named), or the github mode lacks its repository or token.
    """
    mode = env.text("CEPAGE_TRIGGER_MODE", "command", environ)
    if mode not in MODES:
        raise ValueError(f"CEPAGE_TRIGGER_MODE must be one of {', '.join(MODES)}, not {mode!r}.")
    raw_command = env.optional_text("CEPAGE_TRIGGER_COMMAND", environ)
    command = tuple(shlex.split(raw_command)) if raw_command else tuple(default_command())
    if not command:
        raise ValueError("CEPAGE_TRIGGER_COMMAND is empty.")
    alerts = env.text("CEPAGE_TRIGGER_ALERTS", ",".join(DEFAULT_ALERTS), environ)
    settings = TriggerSettings(
        state_dir=home / "trigger",
        host=env.text("CEPAGE_HOST", "127.0.0.1", environ),
        port=env.port("CEPAGE_TRIGGER_PORT", DEFAULT_PORT, environ),
        cooldown_seconds=env.number(
            "CEPAGE_TRIGGER_COOLDOWN_SECONDS", DEFAULT_COOLDOWN_SECONDS, environ, minimum=0
        ),
        alerts=tuple(a.strip() for a in alerts.split(",") if a.strip()),
        mode=mode,
        command=command,
        token=env.secret("CEPAGE_TRIGGER_TOKEN", environ),
        github_repository=env.optional_text("CEPAGE_TRIGGER_GITHUB_REPOSITORY", environ),
        github_token=env.secret("CEPAGE_TRIGGER_GITHUB_TOKEN", environ),
        github_api_url=env.text(
            "CEPAGE_TRIGGER_GITHUB_API_URL", "https://api.github.com", environ
        ).rstrip("/"),
        github_ref=env.text("CEPAGE_TRIGGER_GITHUB_REF", "main", environ),
    )
    check(settings)
    return settings


def check(settings: TriggerSettings) -> None:
    """Refuse settings that could never start a retrain.

    Raises:
        ValueError: the github mode lacks its repository (``owner/name``) or token.
    """
    if settings.mode == "github":
        repo = settings.github_repository or ""
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ValueError(
                f"the github mode needs CEPAGE_TRIGGER_GITHUB_REPOSITORY=owner/name, not {repo!r}."
            )
        if not settings.github_token:
            raise ValueError(
                "the github mode needs CEPAGE_TRIGGER_GITHUB_TOKEN_FILE "
                "(or CEPAGE_TRIGGER_GITHUB_TOKEN)."
            )


# --- the payload ---------------------------------------------------------------------------------


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook payload (answered 400)."""


@dataclass(frozen=True)
class Alert:
    """One alert of a delivery, as far as the trigger cares."""

    name: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    fingerprint: str


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery (Alertmanager's payload, version 4)."""

    status: str
    receiver: str
    group_key: str
    group_labels: dict[str, str]
    external_url: str
    alerts: tuple[Alert, ...]


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{what} is not an object")
    return {str(k): str(v) for k, v in value.items()}


def parse_delivery(body: bytes) -> Delivery:
    """Read Alertmanager's webhook payload.

    Raises:
        PayloadError: not JSON, or not the payload's shape (an object with a list of alerts).
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("alerts"), list):
        raise PayloadError("not an Alertmanager payload: no list of alerts")
    if str(data.get("version", "4")) != "4":
        LOG.warning("payload version %r, expected 4: reading it anyway", data.get("version"))
    alerts = []
    for index, item in enumerate(data["alerts"]):
        if not isinstance(item, dict):
            raise PayloadError(f"alerts[{index}] is not an object")
        labels = _strings(item.get("labels"), f"alerts[{index}].labels")
        alerts.append(
            Alert(
                name=labels.get("alertname", ""),
                status=str(item.get("status", data.get("status", ""))),
                labels=labels,
                annotations=_strings(item.get("annotations"), f"alerts[{index}].annotations"),
                starts_at=str(item.get("startsAt", "")),
                fingerprint=str(item.get("fingerprint", "")),
            )
        )
    return Delivery(
        status=str(data.get("status", "")),
        receiver=str(data.get("receiver", "")),
        group_key=str(data.get("groupKey", "")),
        group_labels=_strings(data.get("groupLabels"), "groupLabels"),
        external_url=str(data.get("externalURL", "")),
        alerts=tuple(alerts),
    )


def triggering(delivery: Delivery, allowed: Sequence[str]) -> list[Alert]:
    """The firing alerts of ``delivery`` whose name is in ``allowed``."""
    return [a for a in delivery.alerts if a.status == "firing" and a.name in allowed]


# --- the reason ----------------------------------------------------------------------------------


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alert_line(alert: Mapping[str, Any]) -> str:
    """``CepageFeatureDrift (feature=proline, model_version=3): Inputs of proline have…``."""
    labels = alert.get("labels", {})
    shown = ", ".join(
        f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
    )
    summary = alert.get("annotations", {}).get("summary", "")
    return (
        f"{alert['alertname']}{f' ({shown})' if shown else ''}{f': {summary}' if summary else ''}"
    )


def build_reason(delivery: Delivery, alerts: Sequence[Alert], now: float) -> dict[str, Any]:
    """Why a retrain runs, as the run records it (``CEPAGE_RETRAIN_REASON``, the workflow's
    ``reason`` input): the alerts that started it, with their labels, annotations (the
    ``summary`` carries the value), ``value`` when the alert has one, fingerprint and start."""
    listed = []
    for alert in alerts:
        item: dict[str, Any] = {
            "alertname": alert.name,
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at,
            "labels": alert.labels,
            "annotations": alert.annotations,
        }
        value = alert.annotations.get("value", alert.labels.get("value"))
        if value is not None:
            item["value"] = value
        listed.append(item)
    reason: dict[str, Any] = {
        "version": REASON_VERSION,
        "trigger": "alertmanager",
        "at": _iso(now),
        "alertnames": sorted({a.name for a in alerts}),
        "summary": "; ".join(alert_line(a) for a in listed),
        "group_key": delivery.group_key,
        "external_url": delivery.external_url,
        "alerts": listed,
    }
    return bounded(reason)


def bounded(reason: dict[str, Any], limit: int = REASON_MAX_CHARS) -> dict[str, Any]:
    """``reason`` cut to ``limit`` characters of JSON: alerts' annotations but the summary go
    first, then alerts from the end (counted in ``more_alerts``), then the summary is cut."""
    if len(encode(reason)) <= limit:
        return reason
    out = dict(reason, alerts=[dict(a) for a in reason["alerts"]])
    for alert in out["alerts"]:
        alert["annotations"] = {
            k: v for k, v in alert["annotations"].items() if k in ("summary", "value")
        }
    while len(encode(out)) > limit and len(out["alerts"]) > 1:
        out["alerts"].pop()
        out["more_alerts"] = len(reason["alerts"]) - len(out["alerts"])
    while len(encode(out)) > limit and len(out["summary"]) > 80:
        out["summary"] = out["summary"][: len(out["summary"]) // 2] + "…"
    return out


def encode(reason: Mapping[str, Any]) -> str:
    """The reason as the one-line JSON the environment variable and the workflow input hold."""
    return json.dumps(reason, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


# --- starting a retrain --------------------------------------------------------------------------


class StartError(RuntimeError):
    """The retrain could not be started (answered 5xx, so Alertmanager retries)."""


class Starter(Protocol):
    """Starts one retrain for ``reason``; returns what to record of the start."""

    def start(self, reason: dict[str, Any], on_exit: Callable[[int], None]) -> dict[str, Any]: ...


class CommandStarter:
    """Runs the retrain command in its own session, in the background, output into a log."""

    def __init__(self, argv: Sequence[str], logs: Path, environ: Mapping[str, str] | None = None):
        self.argv = list(argv)
        self.logs = logs
        self.environ = dict(os.environ if environ is None else environ)

    def start(self, reason: dict[str, Any], on_exit: Callable[[int], None]) -> dict[str, Any]:
        log = self.logs / f"retrain-{reason['at'].replace(':', '')}.log"
        child_env = {**self.environ, REASON_ENV: encode(reason)}
        try:
            proc = start(self.argv, log=log, env=child_env, cwd=Path.cwd())
        except OSError as exc:
            raise StartError(f"cannot run {shlex.join(self.argv)}: {exc}") from None

        def wait() -> None:
            on_exit(proc.wait())

        threading.Thread(target=wait, name="retrain-wait", daemon=True).start()
        return {"command": shlex.join(self.argv), "pid": proc.pid, "log": str(log)}


class GitHubStarter:
    """Dispatches the ``retrain`` workflow through GitHub's REST API."""

    def __init__(self, api_url: str, repository: str, token: str, ref: str = "main"):
        self.url = (
            f"{api_url.rstrip('/')}/repos/{repository}/actions/workflows/{WORKFLOW}/dispatches"
        )
        self.token, self.ref = token, ref

    def request(self, reason: dict[str, Any]) -> urllib.request.Request:
        body = json.dumps({"ref": self.ref, "inputs": {"reason": encode(reason)}}).encode()
        return urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "User-Agent": "cepage-retrain-trigger",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )

    def start(self, reason: dict[str, Any], on_exit: Callable[[int], None]) -> dict[str, Any]:
        request = self.request(reason)
        try:
            # The URL is the configured API base (https://api.github.com by default).
            with urllib.request.urlopen(request, timeout=GITHUB_TIMEOUT_S) as response:  # nosec B310
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode(errors="replace")
            raise StartError(f"GitHub answered {exc.code} to the dispatch: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise StartError(f"cannot reach GitHub at {self.url}: {exc}") from None
        if status != HTTPStatus.NO_CONTENT:
            raise StartError(f"GitHub answered {status} to the dispatch, expected 204")
        return {"workflow": WORKFLOW, "ref": self.ref, "dispatch_url": self.url}


def make_starter(settings: TriggerSettings) -> Starter:
    if settings.mode == "github":
        check(settings)  # a repository and a token, or ValueError
        return GitHubStarter(
            settings.github_api_url,
            str(settings.github_repository),
            str(settings.github_token),
            settings.github_ref,
        )
    return CommandStarter(settings.command, settings.state_dir / "logs")


# --- state, lock, decision -----------------------------------------------------------------------


def read_state(path: Path) -> dict[str, Any]:
    """The persisted state (``{}`` before the first retrain); a corrupt file reads as empty,
    logged, rather than stopping the receiver."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        LOG.error("state file %s unreadable (%s): starting from an empty state", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    """Replace the state file atomically (a crash leaves the old or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    temporary.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``: one decision at a time across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cooldown_remaining(state: Mapping[str, Any], cooldown: float, now: float) -> float:
    """Seconds until a retrain may start again (0 when it may now)."""
    started = state.get("last_started_at")
    if not isinstance(started, (int, float)):
        return 0.0
    return max(0.0, float(started) + cooldown - now)


def still_running(state: Mapping[str, Any]) -> bool:
    """True when the last retrain started by command has not finished (its process lives)."""
    last = state.get("last") or {}
    pid = last.get("pid")
    if not isinstance(pid, int) or "exit_code" in last:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        created = last.get("pid_created")
        return proc.is_running() and (created is None or abs(proc.create_time() - created) < 1)
    except psutil.Error:
        return False


@dataclass(frozen=True)
class Decision:
    """What the receiver did with one delivery, and the HTTP status it answers."""

    started: bool
    why: str
    status: int
    detail: dict[str, Any] = field(default_factory=dict)


class Trigger:
    """The decision: allow-list, cooldown, one retrain at a time, and the record of why."""

    def __init__(
        self,
        settings: TriggerSettings,
        starter: Starter | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.starter = starter if starter is not None else make_starter(settings)
        self.clock = clock
        self._lock = threading.Lock()

    @property
    def lock_file(self) -> Path:
        return self.settings.state_dir / "lock"

    def handle(self, delivery: Delivery) -> Decision:
        alerts = triggering(delivery, self.settings.alerts)
        names = sorted({a.name for a in delivery.alerts})
        if not alerts:
            why = "resolved" if delivery.status == "resolved" else "no allow-listed firing alert"
            LOG.info("delivery %s (%s, %s): %s, no retrain", delivery.group_key, delivery.status,
                     ", ".join(names) or "no alerts", why)  # fmt: skip
            return Decision(False, why, HTTPStatus.OK, {"alerts": names})
        with self._lock, file_lock(self.lock_file):
            return self._decide(delivery, alerts)

    def _decide(self, delivery: Delivery, alerts: list[Alert]) -> Decision:
        now = self.clock()
        state = read_state(self.settings.state_file)
        fired = sorted({a.name for a in alerts})
        remaining = cooldown_remaining(state, self.settings.cooldown_seconds, now)
        if remaining > 0:
            LOG.info("%s: cooldown, %.0f s left, no retrain", ", ".join(fired), remaining)
            return Decision(
                False, "cooldown", HTTPStatus.OK, {"cooldown_remaining_seconds": round(remaining)}
            )
        if still_running(state):
            LOG.info("%s: the last retrain still runs, no retrain", ", ".join(fired))
            return Decision(False, "running", HTTPStatus.OK, {"pid": state["last"]["pid"]})
        reason = build_reason(delivery, alerts, now)
        previous = {k: state.get(k) for k in ("last_started_at", "cooldown_seconds", "last")}
        # Recorded before the start: a crash right after starting cannot start a second one.
        state.update(
            last_started_at=now,
            cooldown_seconds=self.settings.cooldown_seconds,
            last={"reason": reason, "mode": self.settings.mode},
        )
        write_state(self.settings.state_file, state)
        try:
            outcome = self.starter.start(reason, self._finished(now))
        except StartError as exc:
            LOG.error("%s: the retrain could not be started: %s", ", ".join(fired), exc)
            state = {**read_state(self.settings.state_file), **previous}
            state["last_failure"] = {"at": reason["at"], "error": str(exc), "reason": reason}
            write_state(self.settings.state_file, state)
            return Decision(False, "start failed", HTTPStatus.BAD_GATEWAY, {"error": str(exc)})
        record = {"reason": reason, "mode": self.settings.mode, **outcome}
        if "pid" in outcome:
            with contextlib.suppress(Exception):
                import psutil

                record["pid_created"] = psutil.Process(outcome["pid"]).create_time()
        state = read_state(self.settings.state_file)
        state["last"] = record
        state["history"] = [record, *state.get("history", [])][:HISTORY]
        write_state(self.settings.state_file, state)
        LOG.warning("retrain started (%s): %s", self.settings.mode, reason["summary"])
        return Decision(True, "started", HTTPStatus.ACCEPTED, {"reason": reason})

    def _finished(self, started_at: float) -> Callable[[int], None]:
        """Record the exit code of the retrain started at ``started_at``."""

        def record(code: int) -> None:
            with self._lock, file_lock(self.lock_file):
                state = read_state(self.settings.state_file)
                if state.get("last_started_at") != started_at:
                    return
                state["last"]["exit_code"] = code
                state["last"]["finished_at"] = _iso(self.clock())
                if state.get("history"):
                    state["history"][0] = state["last"]
                write_state(self.settings.state_file, state)
            LOG.warning("retrain finished with exit code %s", code)

        return record


def status(settings: TriggerSettings, now: float | None = None) -> dict[str, Any]:
    """The last retrain started, why, its outcome and the cooldown left (``cepage trigger
    status``), read from the state file; ``mode`` and ``alerts`` are this process's settings."""
    moment = time.time() if now is None else now
    state = read_state(settings.state_file)
    started = state.get("last_started_at")
    # The cooldown the receiver had when it started the last retrain, else this process's.
    cooldown = state.get("cooldown_seconds", settings.cooldown_seconds)
    return {
        "mode": settings.mode,
        "alerts": list(settings.alerts),
        "cooldown_seconds": cooldown,
        "cooldown_remaining_seconds": round(cooldown_remaining(state, cooldown, moment)),
        "last_started_at": _iso(started) if isinstance(started, (int, float)) else None,
        "last": state.get("last"),
        "running": still_running(state),
        "last_failure": state.get("last_failure"),
        "state_file": str(settings.state_file),
    }


# --- the HTTP receiver ---------------------------------------------------------------------------


def make_handler(trigger: Trigger) -> type[BaseHTTPRequestHandler]:
    """The request handler: ``POST /webhook`` (Alertmanager), ``GET /healthz``, ``GET /status``."""
    token = trigger.settings.token

    class Handler(BaseHTTPRequestHandler):
        server_version = "cepage-trigger"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug("%s " + format, self.address_string(), *args)

        def _answer(self, code: int, body: Mapping[str, Any]) -> None:
            data = (json.dumps(body) + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if token is None:
                return True
            given = self.headers.get("Authorization", "")
            if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return True
            LOG.warning("%s %s from %s: missing or wrong bearer token", self.command,
                        self.path, self.client_address[0])  # fmt: skip
            self._answer(HTTPStatus.UNAUTHORIZED, {"error": "a bearer token is required"})
            return False

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(HTTPStatus.OK, {"status": "ok"})
            elif self.path == "/status":
                if self._authorized():
                    self._answer(HTTPStatus.OK, status(trigger.settings))
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no {self.path}"})

        def do_POST(self) -> None:
            if self.path != WEBHOOK_PATH:
                self._answer(
                    HTTPStatus.NOT_FOUND, {"error": f"POST {WEBHOOK_PATH}, not {self.path}"}
                )
                return
            if not self._authorized():
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                length = -1
            if length < 0:
                self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
                return
            if length > MAX_BODY_BYTES:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
                return
            try:
                delivery = parse_delivery(self.rfile.read(length))
            except PayloadError as exc:
                LOG.warning("refused a delivery from %s: %s", self.client_address[0], exc)
                self._answer(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            decision = trigger.handle(delivery)
            self._answer(
                decision.status,
                {"retrain": decision.started, "why": decision.why, **decision.detail},
            )

    return Handler


def make_server(trigger: Trigger, host: str, port: int) -> ThreadingHTTPServer:
    """The receiver bound to ``host:port`` (port 0: any free one), not yet serving."""
    server = ThreadingHTTPServer((host, port), make_handler(trigger))
    server.daemon_threads = True
    return server


def serve(settings: TriggerSettings) -> None:
    """Serve until interrupted (SIGINT or SIGTERM)."""
    import signal

    trigger = Trigger(settings)
    server = make_server(trigger, settings.host, settings.port)

    def stop(signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    target = (
        f"workflow {WORKFLOW} of {settings.github_repository}@{settings.github_ref}"
        if settings.mode == "github"
        else shlex.join(settings.command)
    )
    LOG.warning(
        "retrain trigger on http://%s:%s%s: %s start %s, cooldown %.0f s, state %s",
        settings.host, server.server_address[1], WEBHOOK_PATH, ", ".join(settings.alerts),
        target, settings.cooldown_seconds, settings.state_file,
    )  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


__all__ = [
    "DEFAULT_ALERTS",
    "REASON_ENV",
    "WEBHOOK_PATH",
    "CommandStarter",
    "Decision",
    "GitHubStarter",
    "Trigger",
    "TriggerSettings",
    "build_reason",
    "load_trigger_settings",
    "make_server",
    "parse_delivery",
    "serve",
    "status",
]
