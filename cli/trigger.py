"""``cepage trigger``: the alert-driven retrain (``stack/retrain_trigger.py``).

``serve`` runs the webhook receiver Alertmanager calls; ``status`` says what it last did, why,
and how long the cooldown still holds. Settings from the environment (docs/cli.md), options win.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import time
from typing import Annotated, Any

import typer

from cli.common import EXIT_USAGE, fail, settings
from stack import retrain_trigger
from stack.retrain_trigger import TriggerSettings, check, load_trigger_settings

app = typer.Typer(
    help="Start a retrain when a drift or feedback-accuracy alert fires (with a cooldown)."
)


def _settings() -> TriggerSettings:
    try:
        return load_trigger_settings(settings(export=False).home)
    except ValueError as exc:
        fail(str(exc))


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: CEPAGE_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: CEPAGE_TRIGGER_PORT, 9095).")
    ] = None,
    cooldown_seconds: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds after a started retrain during which alerts start none "
            "(default: CEPAGE_TRIGGER_COOLDOWN_SECONDS, 21600 = 6 h).",
        ),
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            help="Command that retrains, in command mode (default: CEPAGE_TRIGGER_COMMAND, "
            "`cepage retrain --from-production`).",
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="command (run the command here) or github (dispatch the retrain workflow) "
            "(default: CEPAGE_TRIGGER_MODE, command).",
        ),
    ] = None,
) -> None:
    """Receive Alertmanager's webhook (POST /webhook); start at most one retrain per cooldown.

    The reason goes to the retrain in CEPAGE_RETRAIN_REASON (or the workflow's `reason` input).
    """
    config = _settings()
    changes: dict[str, Any] = {}
    if host is not None:
        changes["host"] = host
    if port is not None:
        changes["port"] = port
    if cooldown_seconds is not None:
        changes["cooldown_seconds"] = cooldown_seconds
    if command is not None:
        argv = tuple(shlex.split(command))
        if not argv:
            fail("--command is empty.", EXIT_USAGE)
        changes["command"] = argv
    if mode is not None:
        if mode not in ("command", "github"):
            fail(f"--mode must be command or github, not {mode!r}.", EXIT_USAGE)
        changes["mode"] = mode
    config = dataclasses.replace(config, **changes)
    if config.mode == "off":
        fail("CEPAGE_TRIGGER_MODE=off: the trigger is switched off (--mode overrides it).")
    try:
        check(config)
    except ValueError as exc:
        fail(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        retrain_trigger.serve(config)
    except OSError as exc:
        fail(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}")


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """The last retrain the trigger started, why, its outcome, and the cooldown left."""
    config = _settings()
    report = retrain_trigger.status(config, time.time())
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"Mode: {report['mode']}; alerts: {', '.join(report['alerts'])}")
    last = report["last"]
    if not last:
        typer.echo("No retrain started by an alert yet.")
    else:
        reason = last.get("reason", {})
        typer.echo(f"Last retrain started: {report['last_started_at']}")
        typer.echo(f"Why: {reason.get('summary', '?')}")
        for alert in reason.get("alerts", []):
            typer.echo(
                f"  {alert['alertname']} fingerprint {alert.get('fingerprint') or '?'}, "
                f"firing since {alert.get('starts_at') or '?'}"
            )
        if "pid" in last:
            outcome = (
                "running"
                if report["running"]
                else f"exit code {last['exit_code']}"
                if "exit_code" in last
                else "no exit code recorded (the receiver restarted meanwhile)"
            )
            typer.echo(f"Command: {last.get('command')} (pid {last['pid']}): {outcome}")
            typer.echo(f"Log: {last.get('log')}")
        elif "dispatch_url" in last:
            typer.echo(f"Dispatched: workflow {last['workflow']} on {last['ref']}")
    remaining = report["cooldown_remaining_seconds"]
    if remaining:
        total = _duration(report["cooldown_seconds"])
        typer.echo(f"Cooldown: {_duration(remaining)} left (of {total})")
    else:
        typer.echo("Cooldown: over, the next allow-listed alert starts a retrain")
    failure = report.get("last_failure")
    if failure:
        typer.secho(f"Last failure to start ({failure['at']}): {failure['error']}", fg="yellow")


if __name__ == "__main__":  # `python -m cli.trigger`, as `cepage up` starts the receiver
    app()
