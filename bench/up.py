"""How long ``make up`` takes: on a fresh clone (set-up included) and warm (the second start).

``python -m bench.up`` clones this checkout's committed ``HEAD`` into a temporary folder, runs
``make up`` there on free ports, and times it from the command to the moment the model API's
``/readyz``, the UI's health page and MLflow's ``/health`` all answer 200. It then stops the
stack as a user does (Ctrl-C: SIGINT to the command's process group), checks that it exited, and
starts it again in the same clone for the warm figure. ``--write docs/performance.md`` puts the
result between the ``bench-up`` markers (``make bench-up``).

The clone shares nothing with this checkout but the machine's package caches (uv's, pip's): on a
machine that has installed cepage before, the fresh figure is a newcomer's with a warm package
cache (docs/performance.md gives a cold-cache figure beside it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import describe_machine, write_between_markers
from stack.processes import ROOT, answers, free_port, stop_group

READY_TIMEOUT_S = 1800.0  # a cold set-up downloads and installs every locked dependency
STOP_TIMEOUT_S = 60.0
MARKERS = "bench-up"
HEADING = "Latest run of `make bench-up`"
COMMAND = "python -m bench.up --write"


@dataclass(frozen=True)
class Start:
    """One ``make up``: seconds until every URL answered, and until it exited after Ctrl-C."""

    label: str
    ready_s: float
    stop_s: float


class UpError(RuntimeError):
    """``make up`` failed, never became ready, or did not stop."""


def say(text: str) -> None:
    """Progress on stderr (the result goes to stdout)."""
    print(f"[bench-up] {text}", file=sys.stderr, flush=True)


def clone(source: Path, into: Path) -> Path:
    """A fresh clone of ``source``'s committed HEAD (what a newcomer gets, no local state)."""
    target = into / "cepage"
    subprocess.run(["git", "clone", "-q", str(source), str(target)], check=True)
    return target


# Settings of the caller's own tools that must not reach the clone: a tracking URI pointing at a
# team's MLflow would get the clone's first model promoted there; a BentoML home that holds a
# model would skip the first training. Make's own variables would reach the child make.
_NOT_PASSED = ("CEPAGE_", "MLFLOW_", "BENTOML_", "PROMETHEUS_MULTIPROC")
_MAKE_VARIABLES = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "VIRTUAL_ENV")
_PORTS = ("MLFLOW", "API", "UI", "PROMETHEUS", "ALERTMANAGER", "NODE_EXPORTER", "TRIGGER")


def clone_env(checkout: Path) -> dict[str, str]:
    """The environment for ``make up`` in ``checkout``: the caller's, without its MLflow,
    BentoML and cepage settings, every port free (a stack already running keeps its own)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_NOT_PASSED) and k not in _MAKE_VARIABLES
    }
    env["CEPAGE_HOME"] = str(checkout / ".cepage")
    for name in _PORTS:
        env[f"CEPAGE_{name}_PORT"] = str(free_port())
    return env


def health_urls(env: dict[str, str]) -> list[str]:
    """What ``make up`` prints as ready: the API, the UI and MLflow."""
    host = "http://127.0.0.1"
    return [
        f"{host}:{env['CEPAGE_API_PORT']}/readyz",
        f"{host}:{env['CEPAGE_UI_PORT']}/_stcore/health",
        f"{host}:{env['CEPAGE_MLFLOW_PORT']}/health",
    ]


def time_start(checkout: Path, env: dict[str, str], label: str, log: Path) -> Start:
    """Run ``make up`` in ``checkout`` until every health URL answers, then stop it (Ctrl-C)."""
    urls = health_urls(env)
    began = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            ["make", "up"],
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        pending = list(urls)
        while pending:
            if proc.poll() is not None:
                raise UpError(f"`make up` exited ({proc.returncode}) first; see {log}")
            if time.monotonic() - began > READY_TIMEOUT_S:
                raise UpError(f"not ready after {READY_TIMEOUT_S:.0f} s: {pending}; see {log}")
            pending = [url for url in pending if not answers(url, timeout=1.0)]
            if pending:
                time.sleep(0.1)
        ready = time.monotonic() - began
        say(f"{label}: API, UI and MLflow answered after {ready:.1f} s")
    finally:
        stopping = time.monotonic()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # The stack's servers run in sessions of their own: stop_group lists them while
            # make still stands, then stops each one.
            stop_group(proc)
            why = f"`make up` did not stop within {STOP_TIMEOUT_S:.0f} s of Ctrl-C"
            raise UpError(why) from None
    stopped = time.monotonic() - stopping
    left = [url for url in urls if answers(url, timeout=1.0)]
    if left:
        raise UpError(f"still answering after Ctrl-C: {left}")
    return Start(label, ready, stopped)


def render(starts: Sequence[Start], commit: str) -> str:
    """The Markdown block for docs/performance.md."""
    machine = "; ".join(f"{k} {v}" for k, v in describe_machine().items())
    lines = [
        f"Commit `{commit}`. Machine: {machine}",
        "",
        "| start | until API, UI and MLflow answer | Ctrl-C until every process exited |",
        "|---|---:|---:|",
    ]
    lines += [f"| {s.label} | {s.ready_s:.1f} s | {s.stop_s:.1f} s |" for s in starts]
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.up``."""
    parser = argparse.ArgumentParser(prog="python -m bench.up", description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="Markdown file to write the result into.")
    parser.add_argument("--keep", action="store_true", help="Keep the clone (and its logs).")
    args = parser.parse_args(argv)
    # A SIGTERM (CI, a killed terminal) unwinds like Ctrl-C, through the stops above.
    signal.signal(signal.SIGTERM, _interrupt)
    if shutil.which("make") is None or shutil.which("git") is None:
        print("bench-up: needs make and git on PATH", file=sys.stderr)
        return 2
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="cepage-up-"))
    try:
        checkout = clone(ROOT, folder)
        env = clone_env(checkout)
        log = folder / "make-up.log"
        say(f"fresh clone of {commit} in {checkout}; log {log}")
        starts = [
            time_start(checkout, env, "fresh clone (set-up, first model included)", log),
            time_start(checkout, env, "warm (second start, same clone)", log),
        ]
    except (UpError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench-up: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    block = render(starts, commit)
    print(block)
    if args.write:
        write_between_markers(args.write, MARKERS, block, HEADING, COMMAND)
        say(f"wrote the result into {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
