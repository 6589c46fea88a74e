"""Serving benchmark: the floor vs cepage vs ``mlflow models serve`` vs a minimal FastAPI server.

``make bench`` runs ``python -m bench.serving --write docs/performance.md``. On one machine and one
model (trained, promoted and packaged by the real CLI into a temporary CEPAGE_HOME) it measures
the in-process predict and then each server in turn, started from scratch: cold start (process
start to first successful prediction), then wrk at 1, 8 and 32 concurrent clients (req/s, p50,
p99, errors), then the RSS of the server's process tree. It prints one table and the ratios the
service is judged on; ``--write`` puts them into the docs between markers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import QUIET_SHARE, background_share, snapshot, wait_for_quiet
from bench.errors import BenchError
from bench.load import WRK_INSTALL_HINT, LoadError, find_wrk, run_wrk, write_script, wrk_version
from bench.report import (
    FloorResult,
    ServerResult,
    describe_machine,
    render,
    write_between_markers,
)
from bench.servers import DEFAULT_SERVERS, SERVERS, Record, ServerSpec, check_answer, predict_once
from stack.home import BIN, HomeError, has_model, prepare_home, stack_env
from stack.processes import ROOT, Supervisor, free_port, tree_rss_bytes, wait_until

START_TIMEOUT_S = 180.0
FLOOR_MAX_CALLS = 500_000
MARKERS = "bench-serving"
HEADING = "Latest run of `make bench`"


@dataclass(frozen=True)
class RunConfig:
    """What the command line asked for."""

    duration_s: float
    warmup_s: float
    clients: tuple[int, ...]
    servers: tuple[str, ...]
    write: Path | None
    home: Path | None
    keep_home: bool
    settle_s: float


def parse_args(argv: Sequence[str] | None) -> RunConfig:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per cell (10).")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="Unrecorded load before the cells (2)."
    )
    parser.add_argument("--clients", default="1,8,32", help="Concurrent clients (1,8,32).")
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"Which servers, in order (default {','.join(DEFAULT_SERVERS)}; "
        f"all: {','.join(SERVERS)}).",
    )
    parser.add_argument("--write", type=Path, help="Markdown file to write the results into.")
    parser.add_argument(
        "--home", type=Path, help="Use (and keep) this CEPAGE_HOME; trains into it if empty."
    )
    parser.add_argument("--keep-home", action="store_true", help="Keep the temporary home.")
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="Before each measurement, wait up to this many seconds for the machine to be "
        "less than 25%% busy (30; 0: do not wait).",
    )
    args = parser.parse_args(argv)
    servers = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    clients = tuple(int(c) for c in args.clients.split(","))
    if args.duration < 1 or min(clients) < 1:
        parser.error("--duration and --clients must be at least 1")
    return RunConfig(
        duration_s=args.duration,
        warmup_s=max(args.warmup, 0.0),
        clients=clients,
        servers=servers,
        write=args.write,
        home=args.home.resolve() if args.home else None,
        keep_home=args.keep_home,
        settle_s=max(args.settle, 0.0),
    )


def say(text: str) -> None:
    """Progress on stderr (the results go to stdout)."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def run_floor(home: Path, duration_s: float) -> tuple[FloorResult, Record]:
    """The in-process predict, in its own process (same env as the servers)."""
    before = snapshot()
    done = subprocess.run(
        [str(BIN / "python"), "-m", "bench.floor", "--duration", str(duration_s)]
        + ["--max-calls", str(FLOOR_MAX_CALLS)],
        env=stack_env(home),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=duration_s + 120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"The in-process predict failed:\n{done.stderr[-3000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    data["background"] = background_share(before, snapshot())
    return FloorResult.from_json(data), data["record"]


def bench_server(
    spec: ServerSpec,
    *,
    sup: Supervisor,
    home: Path,
    record: Record,
    wrk: str,
    config: RunConfig,
) -> ServerResult:
    """Start one server, time its cold start, load it at each client count, read its RSS."""
    result = ServerResult(key=spec.key, title=spec.title, note=spec.note)
    port = free_port()
    url = f"http://127.0.0.1:{port}{spec.path}"
    body = spec.body(record)
    log = home / f"{spec.key}.log"
    settle(config.settle_s)
    started = time.monotonic()
    proc = sup.start(spec.argv(port), env=stack_env(home, **spec.env), log=log)
    try:
        answered = wait_until(
            lambda: proc.poll() is not None or predict_once(url, body), timeout=START_TIMEOUT_S
        )
        if proc.poll() is not None or not answered:
            why = f"exited ({proc.returncode})" if proc.poll() is not None else "no answer"
            say(f"{spec.key}: log {log}:\n{_tail(log)}")
            raise BenchError(f"{why} before a first prediction (log: {log.name})")
        result.cold_start_s = time.monotonic() - started
        say(f"{spec.key}: first prediction after {result.cold_start_s:.1f} s")
        say(f"{spec.key}: answer {check_answer(url, body)[:200]}")
        script = write_script(home / f"{spec.key}.lua", body)
        if config.warmup_s > 0:
            run_wrk(wrk, url, script, clients=max(config.clients), duration_s=config.warmup_s)
        before = snapshot(proc.pid)
        for clients in config.clients:
            cell = run_wrk(wrk, url, script, clients=clients, duration_s=config.duration_s)
            result.cells.append(cell)
            say(
                f"{spec.key}: {clients:>3} clients: {cell.ok_per_s:8.0f} req/s, "
                f"p50 {cell.p50_ms:.2f} ms, p99 {cell.p99_ms:.2f} ms, {cell.errors} errors"
            )
        result.background = background_share(before, snapshot(proc.pid))
        result.rss_bytes = tree_rss_bytes(proc.pid)
    except (BenchError, LoadError, OSError, ValueError, subprocess.SubprocessError) as exc:
        result.failure = str(exc).splitlines()[0]
        say(f"{spec.key} FAILED: {exc}")
    finally:
        sup.stop(proc)
    return result


def settle(max_wait_s: float) -> None:
    """Let the previous server's exit and any other work die down before measuring."""
    if max_wait_s <= 0:
        return
    busy = wait_for_quiet(max_wait_s)
    if busy >= QUIET_SHARE:
        say(f"the machine is still {busy:.0%} busy after {max_wait_s:g} s; measuring anyway")


def _tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def run(config: RunConfig, wrk: str) -> str:
    """The whole benchmark; returns the rendered block."""
    home = config.home or Path(tempfile.mkdtemp(prefix="cepage-bench-"))
    keep = config.keep_home or config.home is not None
    try:
        with Supervisor() as sup:
            if has_model(home):
                say(f"reusing the model in {home}")
            else:
                say(f"training, promoting and packaging a model in {home} (real CLI)")
                prepare_home(home)
            say(f"in-process predict for {config.duration_s:g} s")
            settle(config.settle_s)
            floor, record = run_floor(home, config.duration_s)
            say(f"floor: p50 {floor.p50_ms:.3f} ms, {floor.calls_per_s:.0f} calls/s")
            servers = [
                bench_server(
                    SERVERS[key], sup=sup, home=home, record=record, wrk=wrk, config=config
                )
                for key in config.servers
            ]
    finally:
        if keep:
            say(f"kept {home} (logs: {home}/*.log)")
        else:
            shutil.rmtree(home, ignore_errors=True)
    settings = {
        "load": f"{wrk_version(wrk)}, 1 thread, -c = concurrent clients, keep-alive",
        "per cell": f"{config.duration_s:g} s after {config.warmup_s:g} s warm-up",
        "model": f"{floor.model} ({floor.estimator})",
        "floor": f"{floor.calls:,} calls of Predictor.predict on one record",
    }
    return render(
        machine=describe_machine(),
        settings=settings,
        floor=floor,
        servers=servers,
        clients=config.clients,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.serving``."""
    config = parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        print(f"bench: {WRK_INSTALL_HINT}", file=sys.stderr)
        return 2
    began = time.monotonic()
    try:
        block = run(config, wrk)
    except (BenchError, HomeError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; every server it started has been stopped.", file=sys.stderr)
        return 130
    print(block)
    if config.write:
        write_between_markers(config.write, MARKERS, block, HEADING)
        say(f"wrote the results into {config.write}")
    say(f"done in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
