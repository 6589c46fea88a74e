"""``cepage report``: the drift report of a window of production traffic (train/drift_report.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.common import EXIT_USAGE, fail, settings
from cli.production import LogOpt

DEFAULT_SINCE_DAYS = 7


def _day(text: str | None, flag: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{flag} takes a day as YYYY-MM-DD, not {text!r}.", EXIT_USAGE)


def report(
    since_days: Annotated[
        int,
        typer.Option(
            "--since-days",
            min=1,
            help="The window: the last N days (UTC), today included.",
        ),
    ] = DEFAULT_SINCE_DAYS,
    first: Annotated[
        str | None,
        typer.Option(
            "--from", help="The window's first day, YYYY-MM-DD (UTC); wins over --since-days."
        ),
    ] = None,
    last: Annotated[
        str | None,
        typer.Option(
            "--to", help="The window's last day, YYYY-MM-DD (UTC), included (default: today)."
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="The model version whose training rows are the reference (default: @champion).",
        ),
    ] = None,
    log: LogOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The HTML file (default: under $CEPAGE_HOME/reports/).",
        ),
    ] = None,
    mlflow: Annotated[
        bool,
        typer.Option(help="Log the report to MLflow (experiment <CEPAGE_EXPERIMENT>-monitoring)."),
    ] = True,
) -> None:
    """Drift report: production inputs and predictions of a window against the training rows."""
    from train.drift_report import Window, build
    from train.errors import StepError

    config = settings()
    start, end = _day(first, "--from"), _day(last, "--to")
    today = datetime.now(UTC).date()
    if start is None:
        window = Window.last_days(since_days, end or today)
    else:
        window = Window(start, end or today)
    if window.first > window.last:
        fail(f"the window starts ({window.first}) after it ends ({window.last}).", EXIT_USAGE)
    try:
        built = build(config, window, version=version, log=log, out=out, log_to_mlflow=mlflow)
    except StepError as exc:
        fail(str(exc))
    served = ", ".join(f"v{k}: {v}" for k, v in built.served_by.items())
    typer.echo(
        f"Drift report of {built.model_name} version {built.model_version}, {built.window} (UTC): "
        f"{built.rows} predictions ({served}) against {built.reference_rows} training rows."
    )
    drifted = ", ".join(built.drifted) or "none"
    typer.echo(
        f"Drifted features: {len(built.drifted)} of {len(built.features)} "
        f"({built.drifted_share:.0%}): {drifted}"
    )
    typer.echo(f"Prediction mix: {'drifted' if built.prediction.drifted else 'no drift'}")
    if built.accuracy is not None:
        held = (
            f" (held-out rows at training: {built.reference_accuracy:.1%})"
            if built.reference_accuracy is not None
            else ""
        )
        typer.echo(f"Accuracy: {built.accuracy:.1%} on {built.labelled_rows} labelled rows{held}")
    for note in built.notes:
        typer.secho(f"Note: {note}", fg="yellow", err=True)
    typer.echo(f"Written to {built.html}")
    if built.run_id:
        typer.echo(f"Logged to MLflow run {built.run_id}")
