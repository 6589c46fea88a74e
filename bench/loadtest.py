"""Load and soak runs of the model API with locust: ``make loadtest`` and ``make soak``.

Without ``--url`` it trains a model with the real CLI into a temporary CEPAGE_HOME, starts
``bentoml serve`` on 127.0.0.1 and drives it with ``bench/locustfile.py`` (single predictions,
batches and feedback), sampling the RSS of the server's process tree meanwhile. With ``--url`` it
drives a running service instead (e.g. ``make up``'s, which Prometheus scrapes: the Grafana
dashboard then shows the run); RSS is then not measured. It prints throughput, p50/p95/p99 and the
error count per request kind; ``--write`` puts them into the docs between markers.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.locust_stats import Row, read_failures, read_stats
from bench.report import MIB, describe_machine, write_between_markers
from bench.servers import cepage_body, predict_once
from stack.home import BIN, HomeError, has_model, prepare_home, stack_env
from stack.processes import ROOT, Supervisor, free_port, tree_rss_bytes, wait_until

START_TIMEOUT_S = 180.0
LOCUSTFILE = ROOT / "bench" / "locustfile.py"


@dataclass(frozen=True)
class Config:
    """What the command line asked for."""

    kind: str  # "load" or "soak"
    duration_s: float
    users: int
    workers: int
    url: str | None
    sample_s: float
    write: Path | None


@dataclass
class Result:
    """A whole run."""

    rows: list[Row] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the run, bytes)
    errors: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadtest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--soak", action="store_true", help="Soak run: long, RSS reported.")
    parser.add_argument("--duration", type=float, help="Seconds of load (default 60; soak 600).")
    parser.add_argument("--users", type=int, default=16, help="Simulated users (16).")
    parser.add_argument("--workers", type=int, default=2, help="Service workers (2).")
    parser.add_argument("--url", help="Drive this running service instead of starting one.")
    parser.add_argument("--sample", type=float, default=10.0, help="RSS sample period, s (10).")
    parser.add_argument("--write", type=Path, help="Markdown file to write the results into.")
    args = parser.parse_args(argv)
    duration = args.duration or (600.0 if args.soak else 60.0)
    if duration < 5 or args.users < 1 or args.workers < 1:
        parser.error("--duration must be at least 5 and --users/--workers at least 1")
    return Config(
        kind="soak" if args.soak else "load",
        duration_s=duration,
        users=args.users,
        workers=args.workers,
        url=args.url.rstrip("/") if args.url else None,
        sample_s=max(args.sample, 1.0),
        write=args.write,
    )


def say(text: str) -> None:
    print(f"[{Path(sys.argv[0]).stem}] {text}", file=sys.stderr, flush=True)


def run_locust(url: str, config: Config, workdir: Path, server_pid: int | None) -> Result:
    """Run locust headless against ``url``; sample the server's RSS meanwhile."""
    prefix = workdir / "locust"
    argv = [
        str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--host", url,
        "-u", str(config.users), "-r", str(config.users), "-t", f"{int(config.duration_s)}s",
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    result = Result()
    began = time.monotonic()
    with (workdir / "locust.log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = began + config.duration_s + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if server_pid is not None:
                    result.rss.append((time.monotonic() - began, tree_rss_bytes(server_pid)))
                wait_until(lambda: proc.poll() is not None, timeout=config.sample_s)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    if server_pid is not None:
        result.rss.append((time.monotonic() - began, tree_rss_bytes(server_pid)))
    stats = prefix.with_name("locust_stats.csv")
    if not stats.is_file():
        raise BenchError(f"locust wrote no statistics; see {workdir / 'locust.log'}")
    result.rows = read_stats(stats)
    result.errors = read_failures(prefix.with_name("locust_failures.csv"))
    return result


def render(config: Config, result: Result, target: str) -> str:
    """The block printed and written into the docs."""
    machine = describe_machine()
    for key in ("fastapi", "uvicorn", "mlflow"):
        machine.pop(key, None)
    lines = [
        "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()),
        "",
        f"Run: {config.kind}; {target}; locust {_locust_version()}, {config.users} users "
        f"(think time 0.05-0.25 s; single predictions 7 : batches of 10-50 records 2 : "
        f"feedback 1), {config.duration_s:g} s",
        "",
        "| requests | count | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result.rows:
        lines.append(
            f"| {row.name} | {row.requests:,} | {row.per_s:,.1f} | {_ms(row.p50_ms)} "
            f"| {_ms(row.p95_ms)} | {_ms(row.p99_ms)} | {_ms(row.max_ms)} | {row.failures} |"
        )
    total = next((r for r in result.rows if r.name.startswith("all")), None)
    lines.append("")
    if total is not None:
        lines.append(
            f"- Throughput **{total.per_s:,.1f} req/s**, p50 {_ms(total.p50_ms)} ms, "
            f"p95 {_ms(total.p95_ms)} ms, p99 {_ms(total.p99_ms)} ms, "
            f"**{total.failures} errors** in {total.requests:,} requests"
        )
    if len(result.rss) >= 2:
        lines.append(rss_line(result.rss))
    lines += [f"- error: {e}" for e in result.errors[:5]]
    return "\n".join(lines)


def rss_line(samples: list[tuple[float, int]]) -> str:
    """RSS growth, from the sample after the first quarter (warm) to the last."""
    warm = samples[min(len(samples) - 1, max(1, len(samples) // 4))]
    first, last = samples[0], samples[-1]
    peak = max(b for _, b in samples)
    growth = (last[1] - warm[1]) / MIB
    hours = max(last[0] - warm[0], 1e-9) / 3600
    # A rate per hour means something only over minutes, not over a short load test.
    rate = f" ({growth / hours:+.0f} MiB/h)" if hours * 3600 >= 300 else ""
    return (
        f"- Server RSS (process tree): {first[1] / MIB:,.0f} MiB at start, {warm[1] / MIB:,.0f} "
        f"MiB warm ({warm[0]:.0f} s), {last[1] / MIB:,.0f} MiB at the end ({last[0]:.0f} s), "
        f"peak {peak / MIB:,.0f} MiB: growth after warm-up **{growth:+.1f} MiB**{rate}, "
        f"{len(samples)} samples"
    )


def _ms(value: float) -> str:
    if math.isnan(value):
        return "—"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _locust_version() -> str:
    from importlib.metadata import version

    return version("locust")


def start_service(sup: Supervisor, home: Path, workers: int) -> tuple[str, int]:
    """``bentoml serve`` on a free port; (URL, arbiter pid) once it answers a prediction."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "bentoml"), "serve", "bento.service:Classifier"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    proc = sup.start(argv, env=stack_env(home, CEPAGE_WORKERS=str(workers)), log=home / "serve.log")
    record = read_median_record(home)
    body = cepage_body(record)
    answered = wait_until(
        lambda: proc.poll() is not None or predict_once(f"{url}/predict", body),
        timeout=START_TIMEOUT_S,
    )
    if proc.poll() is not None or not answered:
        raise BenchError(f"the service did not start; see {home / 'serve.log'}")
    return url, proc.pid


def read_median_record(home: Path) -> dict[str, float]:
    """A valid record (every feature at its training median) from the packaged model."""
    import yaml

    [mlmodel] = (home / "bentoml" / "models").rglob("MLmodel")
    schema = yaml.safe_load(mlmodel.read_text())["metadata"]["feature_schema"]
    return {f["name"]: f["median"] for f in schema["features"]}


def run(config: Config) -> str:
    workdir = Path(tempfile.mkdtemp(prefix=f"cepage-{config.kind}-"))
    try:
        if config.url:
            say(f"driving {config.url} for {config.duration_s:g} s with {config.users} users")
            result = run_locust(config.url, config, workdir, None)
            return render(config, result, f"target {config.url} (running service)")
        with Supervisor() as sup:
            if not has_model(workdir):
                say(f"training, promoting and packaging a model in {workdir} (real CLI)")
                prepare_home(workdir)
            url, pid = start_service(sup, workdir, config.workers)
            say(f"{url}: {config.users} users for {config.duration_s:g} s")
            result = run_locust(url, config, workdir, pid)
        target = f"target `bentoml serve` from the checkout, {config.workers} workers, 127.0.0.1"
        return render(config, result, target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.loadtest``."""
    config = parse_args(argv)
    began = time.monotonic()
    try:
        block = run(config)
    except (BenchError, HomeError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("loadtest: interrupted; every process it started has been stopped.", file=sys.stderr)
        return 130
    print(block)
    if config.write:
        target = "make loadtest" if config.kind == "load" else "make soak"
        command = "python -m bench.loadtest" + (" --soak" if config.kind == "soak" else "")
        write_between_markers(
            config.write,
            f"bench-{config.kind}",
            block,
            f"Latest `{target}`",
            command=f"{command} --write",
        )
        say(f"wrote the results into {config.write}")
    say(f"done in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
