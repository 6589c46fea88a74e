"""How long ``make up`` takes: on a fresh clone (set-up included) and warm (the second start).

``python -m bench.up`` clones this checkout's committed ``HEAD`` into a temporary folder, runs
``make up`` there on free ports, and times it from the command to the moment the model API's
``/readyz``, the UI's health page and MLflow's ``/health`` all answer 200. It then stops the
stack as a user does (Ctrl-C: SIGINT to the command's process group), checks that it exited, and
starts it again in the same clone for the warm figure. ``--write docs/performance.md`` puts the
result between the ``bench-up`` markers (``make bench-up``).

The clone shares nothing with this checkout but the machine's package caches (uv's, pip's): the
fresh figure is a newcomer's second project, or their first with a warm cache; the docs say which.
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
from stack.processes import ROOT, answers, free_port

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


def ports_env() -> dict[str, str]:
    """The environment for ``make up`` on free ports (a running stack keeps the defaults)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEPAGE_")}
    for name in ("MLFLOW", "API", "UI", "PROMETHEUS", "ALERTMANAGER", "NODE_EXPORTER"):
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
            os.killpg(proc.pid, signal.SIGKILL)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.up``."""
    parser = argparse.ArgumentParser(prog="python -m bench.up", description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="Markdown file to write the result into.")
    parser.add_argument("--keep", action="store_true", help="Keep the clone (and its logs).")
    args = parser.parse_args(argv)
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
        env = ports_env()
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
