"""What every command shares: settings, exit codes, the one-sentence error."""

from __future__ import annotations

from typing import NoReturn

import typer

from train.settings import Settings, export_tool_env, load_settings

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def settings(*, export: bool = True) -> Settings:
    """The settings, a bad value reported as one sentence; ``export`` points MLflow and
    BentoML at our stores (before either is imported)."""
    try:
        loaded = load_settings()
    except ValueError as exc:
        fail(str(exc))
    if export:
        export_tool_env(loaded)
    return loaded
