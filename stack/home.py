"""A ``CEPAGE_HOME``: the environment of a process whose whole state lives in it, and a home
holding a served model, made with the real CLI (what the benchmarks and tests start from)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from stack.processes import ROOT

BIN = Path(sys.executable).parent
CLI_TIMEOUT_S = 300.0
# What a user runs to get a servable model; the Bento build is not needed to serve from the
# checkout (the CLI tests build one on their own store).
SERVABLE_STEPS: tuple[tuple[str, ...], ...] = (("train",), ("promote",), ("package", "--no-build"))


class HomeError(RuntimeError):
    """A step of making a home failed; the message has the command's output."""


def stack_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a cepage process whose whole state lives in ``home``.

    The tools' own variables are dropped from the caller's environment first, so that a user's
    MLFLOW_TRACKING_URI or BENTOML_HOME cannot leak in. OPENBLAS_CORETYPE and the like are kept.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "BENTOML_"))}
    env.update(
        CEPAGE_HOME=str(home),
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
        BENTOML_HOME=str(home / "bentoml"),
        MLFLOW_DISABLE_TELEMETRY="true",
        BENTOML_DO_NOT_TRACK="true",
        CEPAGE_PROJECT_DIR=str(ROOT),
        PYTHONUNBUFFERED="1",
        # As in an activated venv: `mlflow models serve` execs `uvicorn` through the shell.
        PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
    )
    env.update(extra)
    return env


def cepage(
    *args: str, env: Mapping[str, str], timeout: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run the real ``cepage`` console script of this environment."""
    return subprocess.run(
        [str(BIN / "cepage"), *args],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def has_model(home: Path) -> bool:
    """True when ``home`` already holds a packaged model (a reused home)."""
    models = home / "bentoml" / "models"
    return (home / "mlflow.db").is_file() and models.is_dir() and any(models.iterdir())


def prepare_home(home: Path, train_args: tuple[str, ...] = ()) -> Path:
    """Train, promote and package a model into ``home`` with the real CLI; returns ``home``.

    ``train_args`` go to ``cepage train`` (e.g. ``--data FILE --target COLUMN``; default: the
    wine data).

    Raises:
        HomeError: a step failed (its output is in the message).
    """
    home.mkdir(parents=True, exist_ok=True)
    env = stack_env(home)
    for step in SERVABLE_STEPS:
        args = (*step, *train_args) if step[0] == "train" else step
        done = cepage(*args, env=env)
        if done.returncode != 0:
            raise HomeError(
                f"`cepage {' '.join(args)}` failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
    return home
