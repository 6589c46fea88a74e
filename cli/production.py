"""``cepage dataset``: a training set from the champion's data plus what production was told;
and the step ``cepage retrain --from-production`` runs before training on it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import fail, settings
from train.settings import Settings

if TYPE_CHECKING:
    from train.dataset import Snapshot
    from train.training import Provenance

LogOpt = Annotated[
    str | None,
    typer.Option(
        "--log",
        help="The production log: a directory or s3://bucket/prefix "
        "(default: CEPAGE_PREDICTION_LOG, locally $CEPAGE_HOME/production).",
    ),
]
SinceOpt = Annotated[
    int | None,
    typer.Option("--since-days", min=1, help="Only production rows of the last N days."),
]
OriginalOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="The original rows (default: the training data stored with the champion's run).",
    ),
]


def build_snapshot(
    config: Settings, data: Path | None, log: str | None, since_days: int | None
) -> Snapshot:
    """Build the snapshot and print where its rows came from."""
    from train.dataset import build
    from train.errors import StepError

    try:
        snapshot = build(config, data=data, log=log, since_days=since_days)
    except StepError as exc:
        fail(str(exc))
    typer.echo(
        f"Dataset {snapshot.digest[:12]}: {snapshot.original_rows} original rows "
        f"({snapshot.original_source}) + {snapshot.production_rows} labelled production rows "
        f"({snapshot.log}); {snapshot.holdout_rows} newest production rows held out for the gate."
    )
    if snapshot.unmatched_feedback or snapshot.duplicate_feedback:
        typer.secho(
            f"Note: {snapshot.unmatched_feedback} labels found no prediction in the log (older "
            f"than the window, or lost with a stopped worker); {snapshot.duplicate_feedback} "
            "were second labels for a prediction (the latest kept).",
            fg="yellow",
            err=True,
        )
    if snapshot.rejected_rows:
        typer.secho(
            f"Note: {snapshot.rejected_rows} labelled production rows cannot be training data: "
            f"{snapshot.directory / 'rejected.csv'} lists them with the reason.",
            fg="yellow",
            err=True,
        )
    typer.echo(f"Written to {snapshot.data}")
    return snapshot


def provenance(snapshot: Snapshot) -> Provenance:
    """What a run trained on ``snapshot`` stores about it: its tags, the production rows held
    out for the gate, the manifest."""
    from train.dataset import MANIFEST, ORIGINAL_ARTIFACT, ORIGINAL_FILE
    from train.training import PRODUCTION_HOLDOUT_ARTIFACT, Provenance

    artifacts = {
        f"dataset/{MANIFEST}": snapshot.directory / MANIFEST,
        ORIGINAL_ARTIFACT: snapshot.directory / ORIGINAL_FILE,
    }
    if snapshot.holdout is not None:
        artifacts[PRODUCTION_HOLDOUT_ARTIFACT] = snapshot.holdout
    return Provenance(
        tags=snapshot.tags(), artifacts=artifacts, original_rows=snapshot.original_rows
    )


def dataset(
    data: OriginalOpt = None,
    log: LogOpt = None,
    since_days: SinceOpt = None,
) -> None:
    """Build a versioned training set: the champion's data plus the labelled production rows."""
    build_snapshot(settings(), data, log, since_days)


def production(log: LogOpt = None, since_days: SinceOpt = None) -> None:
    """What production saw, per model version: predictions, labelled share, accuracy."""
    import time

    from train.errors import StepError
    from train.production import location_from, summarize

    config = settings()
    since = None
    if since_days is not None:
        since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - since_days * 86400))
    try:
        location = location_from(log or config.prediction_log)
        versions = summarize(location, since_day=since)
    except StepError as exc:
        fail(str(exc))
    if not versions:
        typer.echo(f"No prediction in {location} yet.")
        return
    typer.echo(f"{'version':>8}  {'predictions':>11}  {'labelled':>8}  {'share':>6}  accuracy")
    for row in versions:
        accuracy = "-" if row.accuracy is None else f"{row.accuracy:.3f}"
        typer.echo(
            f"{row.model_version:>8}  {row.predictions:>11}  {row.labelled:>8}  "
            f"{row.labelled_share:>6.1%}  {accuracy}"
        )


def promote_on_shadow(config: Settings, log: str | None, since_days: int | None) -> bool:
    """``cepage promote --shadow``: the challenger against the champion on the shadow's record,
    printed; True when promoted."""
    import time

    from train.errors import StepError
    from train.production import location_from
    from train.shadow import promote_on_shadow as decide_on_shadow

    since = None
    if since_days is not None:
        since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - since_days * 86400))
    try:
        location = location_from(log or config.prediction_log)
        decision = decide_on_shadow(config, location, since_day=since)
    except StepError as exc:
        fail(str(exc))
    record = decision.record
    agreement = "-" if record.agreement is None else f"{record.agreement:.1%}"
    typer.echo(
        f"Shadow of version {record.challenger_version} beside version "
        f"{record.champion_version}: {record.predictions} records answered (agreement "
        f"{agreement}), {record.labelled} labelled."
    )
    if decision.promote:
        typer.secho(
            f"Promoted version {record.challenger_version} to @champion: {decision.reason}.",
            fg="green",
        )
    else:
        typer.secho(
            f"Kept version {record.champion_version} as @champion (version "
            f"{record.challenger_version} stays @challenger): {decision.reason}.",
            fg="yellow",
        )
    return decision.promote
