"""The ``cepage`` command: train, promote, package, retrain, up, predict, registry, report.

Exit codes: 0 done, 1 failed (the message says why), 2 bad usage, 3 the gate rejected the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import production, registry, report, trigger
from cli.common import EXIT_FAILED, EXIT_REJECTED, EXIT_USAGE, fail, settings
from train.pipeline import DEFAULT_MODEL, DEFAULT_SEED
from train.settings import Settings
from train.training import SPLIT_SEED

app = typer.Typer(
    help="cepage: train -> gate -> package -> serve a scikit-learn classifier.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(registry.app, name="registry")
app.add_typer(trigger.app, name="trigger")
app.command()(production.dataset)
app.command()(production.production)
app.command()(report.report)

DataOpt = Annotated[
    Path | None, typer.Option("--data", help="CSV file (default: scikit-learn's wine data).")
]
TargetOpt = Annotated[str | None, typer.Option("--target", help="Column to predict.")]
ModelOpt = Annotated[str, typer.Option("--model", help="linear (default) or forest.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="Estimator parameter KEY=VALUE (repeatable).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the estimator.")]
CategoricalOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--categorical",
        help="Treat this column as a category whatever it holds (repeatable).",
    ),
]
DropOpt = Annotated[
    list[str] | None,
    typer.Option("--drop", help="Leave this column out of the features (repeatable)."),
]
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


def _step(index: int, total: int, text: str) -> None:
    typer.secho(f"[{index}/{total}] {text}", fg="cyan", err=True)


def _train(config: Settings, **options: Any) -> str:
    """The training step, printed; returns the registered version."""
    from train.errors import StepError
    from train.training import train as train_step

    try:
        result = train_step(config, **options)
    except StepError as exc:
        fail(str(exc))
    typer.echo(f"Features: {result.kinds_summary}")
    for note in result.notes:
        typer.secho(f"Note: {note}", fg="yellow", err=True)
    shown = {
        k: round(v, 4)
        for k, v in result.metrics.items()
        if not k.startswith("f1_") or k == "f1_macro"
    }
    typer.echo(
        f"Registered {config.model_name} version {result.version} (run {result.run_id}): {shown}"
    )
    return result.version


def _promote(
    config: Settings, version: str | None, tolerance: float | None, floor: float | None
) -> bool:
    """The gate, printed; True when promoted."""
    from train.errors import StepError
    from train.gate import promote as promote_step

    try:
        version, decision = promote_step(config, version=version, tolerance=tolerance, floor=floor)
    except StepError as exc:
        fail(str(exc))
    if decision.promote:
        typer.secho(f"Promoted version {version} to @champion: {decision.reason}.", fg="green")
    else:
        typer.secho(
            f"Rejected version {version} (now @challenger; @champion unchanged): "
            f"{decision.reason}.",
            fg="yellow",
        )
    return decision.promote


def _package(config: Settings, build: bool) -> None:
    """The packaging step, printed."""
    from train.errors import StepError
    from train.package import package as package_step

    try:
        result = package_step(config, build=build)
    except StepError as exc:
        fail(str(exc))
    typer.echo(f"Imported MLflow version {result.mlflow_version} as {result.model_tag}")
    if result.challenger_version:
        typer.echo(
            f"Imported @challenger (version {result.challenger_version}) beside it for the "
            "shadow (CEPAGE_SHADOW=on)"
        )
    if result.challenger_refused:
        typer.secho(
            f"Note: the @challenger was not packaged for the shadow: {result.challenger_refused}",
            fg="yellow",
        )
    if result.bento_tag:
        typer.echo(f"Built Bento {result.bento_tag}")


@app.command()
def train(
    data: DataOpt = None,
    target: TargetOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    param: ParamOpt = None,
    seed: SeedOpt = DEFAULT_SEED,
    split_seed: SplitSeedOpt = SPLIT_SEED,
    categorical: CategoricalOpt = None,
    drop: DropOpt = None,
) -> None:
    """Validate the data, train, log to MLflow and register a new model version."""
    _train(
        settings(),
        data=data,
        target=target,
        model=model,
        params=param or (),
        seed=seed,
        split_seed=split_seed,
        categorical=categorical or (),
        drop=drop or (),
    )


@app.command()
def promote(
    version: Annotated[str | None, typer.Option(help="Version to judge (default: newest).")] = None,
    tolerance: ToleranceOpt = None,
    floor: FloorOpt = None,
    force: Annotated[bool, typer.Option(help="Skip the gate: make --version champion.")] = False,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="Judge @challenger on what the service's shadow saw instead: enough records "
            "answered and labelled (CEPAGE_SHADOW_MIN_PREDICTIONS, _MIN_FEEDBACK), and at least "
            "the champion's accuracy on them.",
        ),
    ] = False,
    log: production.LogOpt = None,
    since_days: production.SinceOpt = None,
) -> None:
    """The gate: promote the candidate to @champion if it is good enough, else @challenger."""
    if force and version is None:
        fail("--force needs --version.", EXIT_USAGE)
    if shadow and (force or version is not None):
        fail("--shadow judges @challenger: leave --version and --force out.", EXIT_USAGE)
    config = settings()
    if shadow:
        if not production.promote_on_shadow(config, log, since_days):
            raise typer.Exit(EXIT_REJECTED)
        return
    if force:
        from train.errors import StepError
        from train.registry import force_promote

        try:
            force_promote(config, str(version))
        except StepError as exc:
            fail(str(exc))
        typer.secho(f"Version {version} is @champion (gate skipped by --force).", fg="green")
        return
    if not _promote(config, version, tolerance, floor):
        raise typer.Exit(EXIT_REJECTED)


@app.command()
def package(
    build: Annotated[bool, typer.Option(help="Also build the Bento from bentofile.yaml.")] = True,
) -> None:
    """Import models:/NAME@champion into the BentoML store and build the Bento."""
    _package(settings(), build)


@app.command()
def retrain(
    data: DataOpt = None,
    target: TargetOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    param: ParamOpt = None,
    seed: SeedOpt = DEFAULT_SEED,
    split_seed: SplitSeedOpt = SPLIT_SEED,
    categorical: CategoricalOpt = None,
    drop: DropOpt = None,
    tolerance: ToleranceOpt = None,
    floor: FloorOpt = None,
    build: Annotated[bool, typer.Option(help="Build the Bento after import.")] = True,
    from_production: Annotated[
        bool,
        typer.Option(
            "--from-production",
            help="Train on the champion's data plus the labelled production rows (cepage "
            "dataset); --data then names the original rows. The gate also compares candidate and "
            "champion on the newest of those rows.",
        ),
    ] = False,
    log: production.LogOpt = None,
    since_days: production.SinceOpt = None,
) -> None:
    """Train -> gate -> package. Exit 3 when the gate rejects the model (champion unchanged)."""
    config = settings()
    options: dict[str, Any] = {"data": data, "target": target}
    total = 3
    if from_production:
        if target is not None:
            fail("--from-production takes the champion's target: leave --target out.", EXIT_USAGE)
        total = 4
        _step(1, total, "dataset")
        snapshot = production.build_snapshot(config, data, log, since_days)
        options = {
            "data": snapshot.data,
            "target": snapshot.target,
            "provenance": production.provenance(snapshot),
        }
        categorical = [*snapshot.categorical, *(categorical or ())]
    elif log is not None or since_days is not None:
        fail("--log and --since-days go with --from-production.", EXIT_USAGE)
    _step(total - 2, total, "train")
    version = _train(
        config,
        **options,
        model=model,
        params=param or (),
        seed=seed,
        split_seed=split_seed,
        categorical=categorical or (),
        drop=drop or (),
    )
    _step(total - 1, total, "gate")
    if not _promote(config, version, tolerance, floor):
        typer.echo("Nothing packaged: the serving model is unchanged.")
        raise typer.Exit(EXIT_REJECTED)
    _step(total, total, "package")
    _package(config, build)
    typer.echo("Done: a running service picks the new model up from the store.")


@app.command()
def up(
    retrain_first: Annotated[
        bool, typer.Option("--retrain", help="Train a new model even if one is served.")
    ] = False,
) -> None:
    """Run the local stack (MLflow UI, API, UI) until Ctrl-C; trains on first run."""
    from stack.local import run_stack

    sys.exit(run_stack(settings(), retrain=retrain_first))


@app.command()
def predict(
    records: Annotated[
        str | None,
        typer.Option(
            "--json",
            help="JSON records, e.g. '[{\"alcohol\": 13.2, ...}]' (null for a blank).",
        ),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(help="CSV of records to score; cells are typed by the model's schema."),
    ] = None,
    url: Annotated[str | None, typer.Option(help="API URL (default: the local stack).")] = None,
) -> None:
    """Score records with a running service and print the JSON answer."""
    import requests

    config = settings(export=False)
    if (records is None) == (csv is None):
        fail("give exactly one of --json or --csv.", EXIT_USAGE)
    target = (url or config.api_url).rstrip("/")
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    if csv is not None:
        rows = _csv_rows(csv, target, headers)
    else:
        try:
            parsed = json.loads(records or "")
        except json.JSONDecodeError as exc:
            fail(f"--json is not valid JSON: {exc}", EXIT_USAGE)
        rows = parsed if isinstance(parsed, list) else [parsed]
    response = _call(requests.post, f"{target}/predict", {"records": rows}, headers)
    typer.echo(json.dumps(_json(response, target), indent=2))
    if not response.ok:
        raise typer.Exit(EXIT_FAILED)


def _csv_rows(path: Path, target: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The CSV's rows typed by the served model's feature schema (GET /metadata)."""
    import requests

    from cli.records import RecordsError, csv_records

    response = _call(requests.get, f"{target}/metadata", None, headers)
    if not response.ok:
        fail(f"the API at {target} answered {response.status_code} to GET /metadata.")
    schema = _json(response, target)["feature_schema"]
    try:
        return csv_records(path, schema["features"], schema.get("target"))
    except RecordsError as exc:
        fail(str(exc), EXIT_USAGE)


def _call(method: Any, url: str, body: Any, headers: dict[str, str]) -> Any:
    import requests

    kwargs: dict[str, Any] = {"headers": headers, "timeout": 30}
    if body is not None:
        kwargs["json"] = body
    try:
        return method(url, **kwargs)
    except requests.RequestException as exc:
        fail(f"cannot reach the API at {url.rsplit('/', 1)[0]}: {type(exc).__name__}")


def _json(response: Any, target: str) -> Any:
    try:
        return response.json()
    except ValueError:
        # A proxy's 429/502 page, not the service's JSON: say what came back.
        fail(f"the API at {target} answered {response.status_code} {response.reason}, not JSON.")


def main() -> None:
    """Console-script entry point."""
    app()
