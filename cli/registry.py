"""``cepage registry``: what the workflows (and operators) ask of the model registry."""

from __future__ import annotations

import typer

from cli.common import fail, settings
from contracts.names import CHAMPION
from train.gate import GateRecord, last_gate
from train.registry import champion_version

app = typer.Typer(help="Read the model registry: the champion, the last gate decision.")


@app.command()
def champion() -> None:
    """Print the version number behind @champion (exit 1 when there is none)."""
    from train.errors import StepError

    try:
        typer.echo(champion_version(settings()))
    except StepError as exc:
        fail(str(exc))


@app.command("gate-summary")
def gate_summary() -> None:
    """Print, as Markdown, the gate's decision on the newest version (for a CI job summary)."""
    from train.errors import StepError

    try:
        record = last_gate(settings())
    except StepError as exc:
        fail(str(exc))
    typer.echo(gate_markdown(record))


def _f1(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _rows(rows: int | None) -> str:
    return "production rows: none" if rows is None else f"{rows} recent production rows"


def gate_markdown(record: GateRecord) -> str:
    """A Markdown table of one gate decision and what is served now."""
    verdict = {True: "promoted", False: "rejected", None: "not gated"}[record.decision]
    return "\n".join(
        [
            f"### Retrain: version {record.version} of `{record.model_name}` {verdict}",
            "",
            f"| | macro-F1 (holdout) | macro-F1 ({_rows(record.production_rows)}) |",
            "|---|---|---|",
            f"| candidate (version {record.version}) | {_f1(record.candidate_f1)} "
            f"| {_f1(record.candidate_production_f1)} |",
            f"| champion before the gate | {_f1(record.champion_f1)} "
            f"| {_f1(record.champion_production_f1)} |",
            "",
            f"Gate: {record.reason or 'no decision recorded'}.",
            "",
            f"Serving now: `{record.model_name}@{CHAMPION}` = version {record.champion or '—'}.",
        ]
    )
