"""A throw-away CEPAGE_HOME holding a real trained, promoted and packaged model.

Made through the real CLI, exactly as a user would: ``cepage train``, ``cepage promote``,
``cepage package --no-build`` (the Bento build is not needed to serve from the checkout).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.procs import BIN, ROOT, stack_env

CLI_TIMEOUT_S = 300.0
STEPS: tuple[tuple[str, ...], ...] = (("train",), ("promote",), ("package", "--no-build"))


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why in one sentence."""


def has_model(home: Path) -> bool:
    """True when ``home`` already holds a packaged model (a reused ``--home``)."""
    models = home / "bentoml" / "models"
    return (home / "mlflow.db").is_file() and models.is_dir() and any(models.iterdir())


def prepare_home(home: Path) -> None:
    """Train, promote and package a model into ``home`` with the real ``cepage`` CLI."""
    home.mkdir(parents=True, exist_ok=True)
    env = stack_env(home)
    for args in STEPS:
        done = subprocess.run(
            [str(BIN / "cepage"), *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(
                f"`cepage {' '.join(args)}` failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
