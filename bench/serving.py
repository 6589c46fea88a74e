"""Serving benchmark: the floor vs cepage vs ``mlflow models serve`` vs a minimal FastAPI server.

``make bench`` runs ``python -m bench.serving --write docs/performance.md``. On one machine and one
model (trained, promoted and packaged by the real CLI into a temporary CEPAGE_HOME) it measures
the in-process predict and then each server in turn, started from scratch: cold start (process
start to first successful prediction), then wrk at 1, 8 and 32 concurrent clients (req/s, p50,
p99, errors), then the RSS of the server's process tree. It prints one table and the ratios the
service is judged on; ``--write`` puts them into the docs between markers.

``cepage-log`` is the 1-worker cepage with the production log on (bench/servers.py); with
``cepage`` in the same run, the table is followed by the two side by side, log on ÷ off, and
what became of the logged rows (``/metrics`` read before the stop, Parquet rows counted after).
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
from dataclasses import dataclass, replace
from pathlib import Path

from bench.cpu import QUIET_SHARE, background_share, snapshot, wait_for_quiet
from bench.errors import BenchError
from bench.load import WRK_INSTALL_HINT, LoadError, find_wrk, run_wrk, write_script, wrk_version
from bench.proxied import caddy_binary, ports_file
from bench.reload import ReloadResult, measure_reload, reload_lines
from bench.reload import Target as ReloadTarget
from bench.report import (
    EXPLAIN_ON,
    LOG_OFF,
    LOG_ON,
    SHADOW_ON,
    FloorResult,
    LogRows,
    ServerResult,
    describe_machine,
    log_rows_sentence,
    merge_rounds,
    render,
    write_between_markers,
)
from bench.servers import (
    DEFAULT_SERVERS,
    FOREST_HOME,
    SERVERS,
    Record,
    ServerSpec,
    check_answer,
    home_of,
    log_directory,
    log_rows_from_metrics,
    log_tail,
    parquet_rows,
    predict_once,
    private_bentoml_home,
    read_metrics,
    served_requests,
    with_log_setting,
)
from contracts.names import MODEL_NAME
from stack.home import BIN, HomeError, cepage, has_model, prepare_home, stack_env
from stack.local import RELOAD_SECONDS
from stack.processes import (
    ROOT,
    Supervisor,
    free_port,
    tree_rss_bytes,
    tree_uss_bytes,
    wait_until,
)

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
    interleave: bool = True
    rounds: int = 1
    reload: bool = True


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
    parser.add_argument(
        "--no-interleave",
        dest="interleave",
        action="store_false",
        help=f"Run {LOG_OFF} and {LOG_ON} one after the other like the other servers, instead "
        "of both up at once with their cells alternating (A B, B A, ...).",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Load every server at every client count this many times (1); a cell is then the "
        "median of its rounds. With the prediction log pair interleaved, the rounds alternate.",
    )
    parser.add_argument(
        "--no-reload",
        dest="reload",
        action="store_false",
        help="Skip the retrain measurement (a 2-worker service under load sees `cepage retrain` "
        "package a new champion: store -> every worker serving it).",
    )
    args = parser.parse_args(argv)
    servers = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    clients = tuple(int(c) for c in args.clients.split(","))
    if args.duration < 1 or min(clients) < 1 or args.rounds < 1:
        parser.error("--duration, --clients and --rounds must be at least 1")
    return RunConfig(
        duration_s=args.duration,
        warmup_s=max(args.warmup, 0.0),
        clients=clients,
        servers=servers,
        write=args.write,
        home=args.home.resolve() if args.home else None,
        keep_home=args.keep_home,
        settle_s=max(args.settle, 0.0),
        interleave=args.interleave,
        rounds=args.rounds,
        reload=args.reload,
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


@dataclass
class Running:
    """A server started by the run, and its figures so far."""

    spec: ServerSpec
    proc: subprocess.Popen[bytes]
    port: int
    url: str
    body: str
    result: ServerResult
    script: Path | None = None
    metrics: str | None = None

    def fail(self, exc: BaseException) -> None:
        self.result.failure = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        say(f"{self.spec.key} FAILED: {exc}")


FAILURES = (BenchError, LoadError, OSError, ValueError, subprocess.SubprocessError)


def bench_servers(
    specs: Sequence[ServerSpec],
    *,
    sup: Supervisor,
    home: Path,
    record: Record,
    wrk: str,
    config: RunConfig,
) -> list[ServerResult]:
    """Start the servers one after the other (each one's cold start timed alone), warm each up,
    load them at each client count (``--rounds`` times), alternating which goes first (A B, B A,
    A B, ...), then read their RSS and stop them. One server: start, cold start, cells, RSS,
    stop. With several rounds, a server's cell is the median of its rounds (merge_rounds)."""
    runs: list[Running] = []
    try:
        for spec in specs:
            own = len(specs) > 1
            runs.append(
                start_server(spec, sup=sup, home=home, record=record, config=config, own_home=own)
            )
        live = [r for r in runs if not r.result.failure]
        for run in live:
            try:
                run.script = write_script(home / f"{run.spec.key}.lua", run.body)
                if config.warmup_s > 0:
                    run_wrk(
                        wrk,
                        run.url,
                        run.script,
                        clients=max(config.clients),
                        duration_s=config.warmup_s,
                    )
            except FAILURES as exc:
                run.fail(exc)
        pids = [r.proc.pid for r in live]
        before = snapshot(*pids)
        cells = [(r, c) for r in range(config.rounds) for c in config.clients]
        for index, (round_, clients) in enumerate(cells):
            for run in live if index % 2 == 0 else live[::-1]:
                if not run.result.failure:
                    load_cell(run, wrk, clients, config.duration_s, round_, config.rounds)
        after = snapshot(*pids)
        for run in live:
            if run.result.failure:
                continue
            run.result.cells = merge_rounds(run.result.rounds, config.clients)
            run.result.background = background_share(before, after)
            try:
                run.result.rss_bytes = tree_rss_bytes(run.proc.pid)
                run.result.uss_bytes = tree_uss_bytes(run.proc.pid)
                if run.spec.prediction_log:
                    run.metrics = read_metrics(f"http://127.0.0.1:{run.port}/metrics")
                if run.spec.replicas:
                    run.result.replica_requests = replica_requests(home, run.port)
            except FAILURES as exc:
                run.fail(exc)
    finally:
        for run in runs:
            sup.stop(run.proc)
    for run in runs:
        if run.spec.prediction_log and not run.result.failure:
            run.result.log_rows = count_log_rows(run.metrics, log_directory(run.spec, home))
            say(f"{run.spec.key}: {log_rows_sentence(run.result.log_rows)}")
    return [r.result for r in runs]


def start_server(
    spec: ServerSpec,
    *,
    sup: Supervisor,
    home: Path,
    record: Record,
    config: RunConfig,
    own_home: bool = False,
) -> Running:
    """Start one server and wait for its first prediction (its cold start).

    ``own_home``: a BENTOML_HOME of its own (see private_bentoml_home), for servers up at once.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}{spec.path}"
    body = spec.body(record)
    log = home / f"{spec.key}.log"
    settle(config.settle_s)
    started = time.monotonic()
    env = with_log_setting(stack_env(home_of(spec, home), **spec.env), spec, home)
    if own_home:
        env["BENTOML_HOME"] = str(private_bentoml_home(Path(env["BENTOML_HOME"]), spec.key))
    proc = sup.start(spec.argv(port), env=env, log=log)
    run = Running(spec, proc, port, url, body, ServerResult(spec.key, spec.title, note=spec.note))
    try:
        answered = wait_until(
            lambda: proc.poll() is not None or predict_once(url, body), timeout=START_TIMEOUT_S
        )
        if proc.poll() is not None or not answered:
            why = f"exited ({proc.returncode})" if proc.poll() is not None else "no answer"
            say(f"{spec.key}: log {log}:\n{log_tail(log)}")
            raise BenchError(f"{why} before a first prediction (log: {log.name})")
        run.result.cold_start_s = time.monotonic() - started
        say(f"{spec.key}: first prediction after {run.result.cold_start_s:.1f} s")
        say(f"{spec.key}: answer {check_answer(url, body)[:200]}")
    except FAILURES as exc:
        run.fail(exc)
    return run


def replica_requests(home: Path, port: int) -> list[int]:
    """Requests each replica behind the proxy on ``port`` answered (warm-up included)."""
    ports = json.loads(ports_file(home, port).read_text())
    return [served_requests(read_metrics(f"http://127.0.0.1:{p}/metrics")) for p in ports]


def load_cell(
    run: Running, wrk: str, clients: int, duration_s: float, round_: int = 0, rounds: int = 1
) -> None:
    """One cell: ``clients`` concurrent clients on ``run`` for ``duration_s`` seconds."""
    if run.script is None:
        return
    try:
        cell = run_wrk(wrk, run.url, run.script, clients=clients, duration_s=duration_s)
    except FAILURES as exc:
        run.fail(exc)
        return
    run.result.rounds.append(cell)
    which = f" (round {round_ + 1}/{rounds})" if rounds > 1 else ""
    say(
        f"{run.spec.key}{which}: {clients:>3} clients: {cell.ok_per_s:8.0f} req/s, "
        f"p50 {cell.p50_ms:.2f} ms, p99 {cell.p99_ms:.2f} ms, {cell.errors} errors"
    )


def groups(servers: Sequence[str], interleave: bool) -> list[tuple[str, ...]]:
    """The servers in run order, grouped: with ``interleave``, ``cepage`` and the servers
    compared with it (``cepage-log``, ``cepage-shadow``, ``cepage-explain``), when asked for, run
    together where the first of them stands; every other server alone."""
    compared = [key for key in servers if key in (LOG_OFF, LOG_ON, SHADOW_ON, EXPLAIN_ON)]
    together = interleave and LOG_OFF in compared and len(compared) > 1
    out: list[tuple[str, ...]] = []
    for key in servers:
        if together and key in compared:
            if key == compared[0]:
                out.append(tuple(compared))
            continue
        out.append((key,))
    return out


def count_log_rows(metrics: str | None, directory: Path) -> LogRows:
    """What became of the prediction log's rows: ``/metrics`` read before the stop, the Parquet
    files counted after it (the shutdown hook writes what the queue still held)."""
    answered = None
    if metrics is not None:
        answered = sum(
            round(float(line.rsplit(None, 1)[1]))
            for line in metrics.splitlines()
            if line.startswith("cepage_predictions_total{")
        )
    try:
        rows, files = parquet_rows(directory)
    except (OSError, ImportError, ValueError) as exc:
        say(f"cannot count the Parquet rows in {directory}: {exc}")
        rows, files = None, 0
    return LogRows(
        answered=answered,
        outcomes=log_rows_from_metrics(metrics) if metrics is not None else {},
        parquet_rows=rows,
        parquet_files=files,
    )


def settle(max_wait_s: float) -> None:
    """Let the previous server's exit and any other work die down before measuring."""
    if max_wait_s <= 0:
        return
    busy = wait_for_quiet(max_wait_s)
    if busy >= QUIET_SHARE:
        say(f"the machine is still {busy:.0%} busy after {max_wait_s:g} s; measuring anyway")


def ensure_challenger(home: Path) -> None:
    """A challenger in the store for ``cepage-shadow``: a candidate trained like the champion,
    made @challenger by a gate asking it to beat the champion by 1 macro-F1, then packaged beside
    it (the real CLI). Its cost per request is then the champion's own."""
    if any((home / "bentoml" / "models").glob(f"{MODEL_NAME}-challenger")):
        say("reusing the packaged challenger")
        return
    say("training a challenger and packaging it beside the champion (real CLI)")
    env = stack_env(home)
    rejected = cepage("retrain", "--no-build", "--tolerance", "-1", env=env)
    if rejected.returncode != 3:
        raise BenchError(f"the challenger's retrain did not end rejected:\n{rejected.stdout}")
    packaged = cepage("package", "--no-build", env=env)
    if packaged.returncode != 0 or "@challenger" not in packaged.stdout:
        raise BenchError(f"packaging the challenger failed:\n{packaged.stdout}{packaged.stderr}")


def bench_reload(
    *, sup: Supervisor, home: Path, record: Record, wrk: str, config: RunConfig
) -> tuple[ReloadResult | None, str | None]:
    """A 2-worker service polling its store as the local stack's does, under load while the real
    ``cepage retrain`` packages a new champion (bench/reload.py); (result, or why it failed)."""
    base = SERVERS["cepage-2w"]
    spec = replace(
        base,
        key="cepage-reload",
        env={**base.env, "CEPAGE_MODEL_RELOAD_SECONDS": RELOAD_SECONDS},
    )
    run = start_server(spec, sup=sup, home=home, record=record, config=config)
    try:
        if run.result.failure:
            return None, run.result.failure
        metrics_url = f"http://127.0.0.1:{run.port}/metrics"
        target = ReloadTarget(
            workers=int(spec.env["CEPAGE_WORKERS"]),
            interval_s=float(RELOAD_SECONDS),
            latest=home / "bentoml" / "models" / MODEL_NAME / "latest",
            read_metrics=lambda: read_metrics(metrics_url),
            answer=lambda: check_answer(run.url, run.body),
        )
        say("retrain under load: `cepage retrain` while a 2-worker service polls its store")
        result = measure_reload(
            target,
            retrain=[str(BIN / "cepage"), "retrain", "--no-build"],
            env=stack_env(home),
            cwd=ROOT,
            log=home / "retrain.log",
            wrk=wrk,
            url=run.url,
            script=write_script(home / f"{spec.key}.lua", run.body),
        )
        say(
            f"retrain: every worker serving version {result.new_version} "
            f"{result.seconds:.2f} s after the store had it; {result.load.errors} failed requests"
        )
        return result, None
    except FAILURES as exc:
        say(f"retrain measurement FAILED: {exc}")
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    finally:
        sup.stop(run.proc)


def ensure_caddy() -> None:
    """Build the proxy's Caddy now if it is not built yet (minutes of Go on a fresh machine), so
    the proxied rows' cold start is not a build; without it those rows fail and say why."""
    say("the proxy's Caddy for the proxied rows (tests/tools/caddy.sh: built once, then reused)")
    try:
        caddy_binary()
    except BenchError as exc:
        say(f"{exc}\nthe proxied rows will fail")


def ensure_forest(home: Path) -> None:
    """A home whose champion is `--model forest` on the same data, for the batching rows."""
    if has_model(home):
        say(f"reusing the forest in {home}")
        return
    say(f"training, promoting and packaging a forest in {home} (real CLI)")
    home.mkdir(parents=True, exist_ok=True)
    prepare_home(home, train_args=("--model", "forest"))


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
            if SHADOW_ON in config.servers:
                ensure_challenger(home)
            if any(SERVERS[key].forest for key in config.servers):
                ensure_forest(home / FOREST_HOME)
            if any(SERVERS[key].replicas for key in config.servers):
                ensure_caddy()
            say(f"in-process predict for {config.duration_s:g} s")
            settle(config.settle_s)
            floor, record = run_floor(home, config.duration_s)
            say(f"floor: p50 {floor.p50_ms:.3f} ms, {floor.calls_per_s:.0f} calls/s")
            servers = [
                result
                for group in groups(config.servers, config.interleave)
                for result in bench_servers(
                    [SERVERS[key] for key in group],
                    sup=sup,
                    home=home,
                    record=record,
                    wrk=wrk,
                    config=config,
                )
            ]
            reload, reload_failure = (
                bench_reload(sup=sup, home=home, record=record, wrk=wrk, config=config)
                if config.reload
                else (None, None)
            )
    finally:
        if keep:
            say(f"kept {home} (logs: {home}/*.log)")
        else:
            shutil.rmtree(home, ignore_errors=True)
    settings = {
        "load": f"{wrk_version(wrk)}, 1 thread, -c = concurrent clients, keep-alive",
        "per cell": f"{config.duration_s:g} s after {config.warmup_s:g} s warm-up"
        + (f", median of {config.rounds} rounds" if config.rounds > 1 else ""),
        **{
            f"compared with {group[0]}": " and ".join(group) + " up together, cells alternating"
            for group in groups(config.servers, config.interleave)
            if len(group) > 1
        },
        "model": f"{floor.model} ({floor.estimator})",
        "floor": f"{floor.calls:,} calls of Predictor.predict on one record",
    }
    return render(
        machine=describe_machine(),
        settings=settings,
        floor=floor,
        servers=servers,
        clients=config.clients,
        reload=reload_lines(reload, reload_failure),
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
