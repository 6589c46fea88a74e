"""``cepage registry``: what the workflows (and operators) ask of the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import fail, settings
from contracts.names import CHAMPION
from train.gate import GateRecord, last_gate
from train.registry import champion_version

app = typer.Typer(
    help="Read the model registry: the champion, the last gate decision, a version's model card."
)


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


@app.command("model-card")
def model_card(
    version: Annotated[
        str | None, typer.Option(help="The version (default: the one behind @champion).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON document instead of Markdown.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also write model_card.md and model_card.json (the same card) into this folder.",
        ),
    ] = None,
) -> None:
    """Make a version's model card from what MLflow recorded, store it on the version's run
    (model_card/model_card.md and .json) and print it. `cepage package` does the same for the
    version it packages."""
    import json

    from train.errors import StepError
    from train.model_card import build_card, store_card
    from train.package import project_dir
    from train.tracking import connect

    config = settings()
    try:
        client = connect(config, create=False)
        chosen = version or champion_version(config)
        card = build_card(client, config.model_name, chosen, project_dir())
        store_card(client, card.document["model"]["run_id"], card)
    except StepError as exc:
        fail(str(exc))
    text = json.dumps(card.document, indent=2)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_card.md").write_text(card.markdown)
        (out / "model_card.json").write_text(text + "\n")
    typer.echo(text if as_json else card.markdown)


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
