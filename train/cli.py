"""The ``cepage`` command line: train, promote, package, retrain, up, predict.

Exit codes: 0 done, 1 failed (the message says why), 2 bad usage, 3 the gate rejected the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from train.settings import Settings, export_tool_env, load_settings

EXIT_FAILED = 1
EXIT_REJECTED = 3

app = typer.Typer(
    help="cepage: train -> gate -> package -> serve a scikit-learn classifier.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _settings() -> Settings:
    settings = load_settings()
    export_tool_env(settings)
    return settings


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(EXIT_FAILED)


def _step(index: int, total: int, text: str) -> None:
    typer.secho(f"[{index}/{total}] {text}", fg="cyan", err=True)


DataOpt = Annotated[
    Path | None, typer.Option("--data", help="CSV file (default: scikit-learn's wine data).")
]
TargetOpt = Annotated[str | None, typer.Option("--target", help="Column to predict.")]
ModelOpt = Annotated[str, typer.Option("--model", help="linear (default) or forest.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="Estimator parameter KEY=VALUE (repeatable).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the estimator.")]
SplitSeedOpt = Annotated[
    int,
    typer.Option(
        "--split-seed",
        help="Seed of the stratified held-out split; keep it fixed so the gate compares "
        "versions on rows none of them trained on.",
    ),
]
ToleranceOpt = Annotated[
    float | None,
    typer.Option(help="Macro-F1 the candidate may lose vs the champion (CEPAGE_GATE_TOLERANCE)."),
]
FloorOpt = Annotated[
    float | None, typer.Option(help="Minimum macro-F1 to be promoted (CEPAGE_GATE_FLOOR).")
]


def run_train(
    settings: Settings,
    data: Path | None,
    target: str | None,
    model: str,
    params: list[str] | None,
    seed: int,
    split_seed: int = 42,
) -> str:
    """Validate and train; returns the registered version. Raises typer.Exit on failure."""
    from train.data import DataError, load_dataset
    from train.pipeline import ParamError, parse_params
    from train.tracking import StoreError
    from train.training import train_model

    try:
        dataset = load_dataset(data, target)
        result = train_model(
            settings,
            dataset,
            model=model,
            params=parse_params(params or []),
            seed=seed,
            split_seed=split_seed,
        )
    except (DataError, ParamError, StoreError) as exc:
        raise _fail(str(exc)) from None
    shown = {
        k: round(v, 4)
        for k, v in result.metrics.items()
        if not k.startswith("f1_") or k == "f1_macro"
    }
    typer.echo(
        f"Registered {settings.model_name} version {result.version} (run {result.run_id}): {shown}"
    )
    return result.version


def run_promote(
    settings: Settings, version: str | None, tolerance: float | None, floor: float | None
) -> bool:
    """Apply the gate; True when promoted."""
    from train.registry import promote
    from train.tracking import StoreError

    try:
        version, decision = promote(settings, version=version, tolerance=tolerance, floor=floor)
    except StoreError as exc:
        raise _fail(str(exc)) from None
    if decision.promote:
        typer.secho(f"Promoted version {version} to @champion: {decision.reason}.", fg="green")
    else:
        typer.secho(
            f"Rejected version {version} (now @challenger; @champion unchanged): "
            f"{decision.reason}.",
            fg="yellow",
        )
    return decision.promote


def run_package(settings: Settings, build: bool) -> None:
    from train.package import package
    from train.tracking import StoreError

    try:
        result = package(settings, build=build)
    except StoreError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"Imported MLflow version {result.mlflow_version} as {result.model_tag}")
    if result.bento_tag:
        typer.echo(f"Built Bento {result.bento_tag}")


@app.command()
def train(
    data: DataOpt = None,
    target: TargetOpt = None,
    model: ModelOpt = "linear",
    param: ParamOpt = None,
    seed: SeedOpt = 42,
    split_seed: SplitSeedOpt = 42,
) -> None:
    """Validate the data, train, log to MLflow and register a new model version."""
    run_train(_settings(), data, target, model, param, seed, split_seed)


@app.command()
def promote(
    version: Annotated[str | None, typer.Option(help="Version to judge (default: newest).")] = None,
    tolerance: ToleranceOpt = None,
    floor: FloorOpt = None,
    force: Annotated[bool, typer.Option(help="Skip the gate: make --version champion.")] = False,
) -> None:
    """The gate: promote the candidate to @champion if it is good enough, else @challenger."""
    settings = _settings()
    if force:
        from train.registry import force_promote
        from train.tracking import StoreError

        if version is None:
            raise _fail("--force needs --version.")
        try:
            force_promote(settings, version)
        except StoreError as exc:
            raise _fail(str(exc)) from None
        typer.secho(f"Version {version} is @champion (gate skipped by --force).", fg="green")
        return
    if not run_promote(settings, version, tolerance, floor):
        raise typer.Exit(EXIT_REJECTED)


@app.command()
def package(
    build: Annotated[bool, typer.Option(help="Also build the Bento from bentofile.yaml.")] = True,
) -> None:
    """Import models:/NAME@champion into the BentoML store and build the Bento."""
    run_package(_settings(), build)


@app.command()
def retrain(
    data: DataOpt = None,
    target: TargetOpt = None,
    model: ModelOpt = "linear",
    param: ParamOpt = None,
    seed: SeedOpt = 42,
    split_seed: SplitSeedOpt = 42,
    tolerance: ToleranceOpt = None,
    floor: FloorOpt = None,
    build: Annotated[bool, typer.Option(help="Build the Bento after import.")] = True,
) -> None:
    """Train -> gate -> package. Exit 3 when the gate rejects the model (champion unchanged)."""
    settings = _settings()
    _step(1, 3, "train")
    run_train(settings, data, target, model, param, seed, split_seed)
    _step(2, 3, "gate")
    if not run_promote(settings, None, tolerance, floor):
        typer.echo("Nothing packaged: the serving model is unchanged.")
        raise typer.Exit(EXIT_REJECTED)
    _step(3, 3, "package")
    run_package(settings, build)
    typer.echo("Done: a running service picks the new model up from the store.")


@app.command()
def up(
    retrain_first: Annotated[
        bool, typer.Option("--retrain", help="Train a new model even if one is served.")
    ] = False,
) -> None:
    """Run the local stack (MLflow UI, API, UI) until Ctrl-C; trains on first run."""
    from train.stack import run_stack

    sys.exit(run_stack(_settings(), retrain=retrain_first))


@app.command()
def predict(
    records: Annotated[
        str | None, typer.Option("--json", help="JSON records, e.g. '[{\"alcohol\": 13.2, ...}]'.")
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="CSV of records to score.")] = None,
    url: Annotated[str | None, typer.Option(help="API URL (default: the local stack).")] = None,
) -> None:
    """Score records with a running service and print the JSON answer."""
    import pandas as pd
    import requests

    settings = load_settings()
    if (records is None) == (csv is None):
        raise _fail("give exactly one of --json or --csv.")
    if csv is not None:
        rows = pd.read_csv(csv).to_dict(orient="records")
    else:
        try:
            parsed = json.loads(records or "")
        except json.JSONDecodeError as exc:
            raise _fail(f"--json is not valid JSON: {exc}") from None
        rows = parsed if isinstance(parsed, list) else [parsed]
    target = (url or settings.api_url).rstrip("/")
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        response = requests.post(
            f"{target}/predict", json={"records": rows}, headers=headers, timeout=30
        )
    except requests.RequestException as exc:
        raise _fail(f"cannot reach the API at {target}: {type(exc).__name__}") from None
    typer.echo(json.dumps(response.json(), indent=2))
    if not response.ok:
        raise typer.Exit(EXIT_FAILED)


def main() -> None:
    """Console-script entry point."""
    app()
