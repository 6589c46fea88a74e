"""Turning results into text: the machine, one table, the ratios vs the targets; writing docs."""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.load import LoadResult

MIB = 1024 * 1024
TARGET_THROUGHPUT_RATIO = 2.0  # cepage ÷ mlflow models serve at 32 clients, at least
# Issue 19's targets (each a ratio within one run, never an absolute figure of another machine).
TARGET_WORKERS_RATIO = 1.6  # 2 workers ÷ 1 worker at 32 clients, at least
TARGET_FASTAPI_RATIO = 1.0  # cepage ÷ the minimal FastAPI server at 32 clients, at least
TARGET_OVERHEAD_MS = 1.0  # cepage p50 at 1 client - the floor's p50, at most
TARGET_P99_1_MS = 5.0  # cepage p99 at 1 client, at most
TARGET_P99_32_RATIO = 1.2  # cepage p99 ÷ the minimal FastAPI's at 32 clients, at most
TARGET_COLD_START_GAP_S = 0.5  # cepage cold start - the floor's, at most
TARGET_EXTRA_WORKER_USS_MIB = 200.0  # unique memory of the 2nd worker (2 workers - 1), at most
TARGET_BATCHED_RATIO = 3.0  # forest batched ÷ unbatched at 32 clients, at least
TARGET_BATCHED_P99_1_RATIO = 1.0  # forest batched ÷ unbatched p99 at 1 client, at most
# The production log (issue 14): log on vs off, 1 worker each, at 32 clients.
LOG_OFF, LOG_ON = "cepage", "cepage-log"
SHADOW_ON = "cepage-shadow"  # the shadow challenger on, compared with LOG_OFF like LOG_ON
PROXY_2 = "cepage-proxy-2"  # 2 replicas behind the prod reverse proxy (bench/proxied.py)
PROXY_1 = "cepage-proxy-1"  # the same proxy in front of 1 replica
EXPLAIN_ON = "cepage-explain"  # every request asks for explanations, compared the same way
LOG_CLIENTS = 32
TARGET_LOG_THROUGHPUT = 0.90  # on ÷ off, at least
TARGET_LOG_P99 = 1.20  # on ÷ off, at most
LOG_METRIC = "cepage_prediction_log_rows_total"


@dataclass(frozen=True)
class FloorResult:
    """The in-process predict (see bench.floor)."""

    calls_per_s: float
    p50_ms: float
    p99_ms: float
    calls: int
    cold_start_s: float
    rss_bytes: int
    model: str
    estimator: str
    background: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FloorResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class LogRows:
    """What became of the prediction log's rows in one server's run (predictions dataset)."""

    answered: int | None  # cepage_predictions_total just before the stop
    outcomes: dict[str, int]  # cepage_prediction_log_rows_total by outcome, just before the stop
    parquet_rows: int | None  # rows in the Parquet files after the stop (shutdown flush included)
    parquet_files: int = 0


@dataclass
class ServerResult:
    """One server's figures (cells in the order of the client counts)."""

    key: str
    title: str
    cold_start_s: float | None = None
    rss_bytes: int | None = None
    uss_bytes: int | None = None  # unique memory of the tree (psutil's USS)
    background: float | None = None
    cells: list[LoadResult] = field(default_factory=list)
    failure: str | None = None
    rounds: list[LoadResult] = field(default_factory=list)  # every cell run, in order
    note: str = ""
    log_rows: LogRows | None = None
    replica_requests: list[int] = field(default_factory=list)  # behind the proxy, per replica

    def cell(self, clients: int) -> LoadResult | None:
        return next((c for c in self.cells if c.clients == clients), None)


def merge_rounds(cells: Sequence[LoadResult], clients: Sequence[int]) -> list[LoadResult]:
    """One cell per client count from several rounds: req/s, p50 and p99 the medians of the
    rounds', requests and errors summed. One round: the cell itself."""
    merged = []
    for count in clients:
        runs = [c for c in cells if c.clients == count]
        if len(runs) == 1:
            merged.append(runs[0])
        elif runs:
            merged.append(
                LoadResult(
                    clients=count,
                    requests=sum(c.requests for c in runs),
                    ok_per_s=statistics.median(c.ok_per_s for c in runs),
                    p50_ms=statistics.median(c.p50_ms for c in runs),
                    p99_ms=statistics.median(c.p99_ms for c in runs),
                    errors=sum(c.errors for c in runs),
                )
            )
    return merged


def describe_machine() -> dict[str, str]:
    """CPU, cores, RAM, OS and the versions that matter, for the record."""
    import psutil

    packages = ("bentoml", "mlflow", "scikit-learn", "numpy", "fastapi", "uvicorn")
    return {
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} logical ({psutil.cpu_count(logical=False)} physical)",
        "RAM": f"{psutil.virtual_memory().total / 1024**3:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": sys.version.split()[0],
        **{name: _version(name) for name in packages},
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE") or "(unset)",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "(not installed)"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}"


def results_table(
    floor: FloorResult | None, servers: Sequence[ServerResult], clients: Sequence[int]
) -> str:
    """One markdown table: a row per server and client count."""
    lines = [
        "| server | clients | req/s | p50 ms | p99 ms | errors | cold start s | RSS MiB "
        "| USS MiB | other CPU % |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    if floor is not None:
        lines.append(
            f"| in-process predict (floor) | 1 | {_num(floor.calls_per_s, 0)} "
            f"| {_ms(floor.p50_ms)} | {_ms(floor.p99_ms)} | 0 | {_num(floor.cold_start_s)} "
            f"| {_num(floor.rss_bytes / MIB, 0)} | — | {_pct(floor.background)} |"
        )
    for server in servers:
        if server.failure:
            lines.append(f"| {server.title} | — | failed: {server.failure} | | | | | | | |")
            continue
        for index, count in enumerate(clients):
            cell = server.cell(count)
            first = index == 0
            name = server.title if first else ""
            cold = _num(server.cold_start_s) if first else ""
            rss = _num((server.rss_bytes or 0) / MIB, 0) if first and server.rss_bytes else ""
            uss = _num((server.uss_bytes or 0) / MIB, 0) if first and server.uss_bytes else ""
            bg = _pct(server.background) if first else ""
            if cell is None:
                lines.append(
                    f"| {name} | {count} | — | — | — | — | {cold} | {rss} | {uss} | {bg} |"
                )
                continue
            lines.append(
                f"| {name} | {count} | {_num(cell.ok_per_s, 0)} | {_ms(cell.p50_ms)} "
                f"| {_ms(cell.p99_ms)} | {cell.errors} | {cold} | {rss} | {uss} | {bg} |"
            )
    return "\n".join(lines)


def ratio_lines(floor: FloorResult | None, servers: Sequence[ServerResult]) -> list[str]:
    """The figures the service is judged on, each against its target (a server missing from
    the run, or failed, leaves its lines out)."""
    by_key = {s.key: s for s in servers if not s.failure}

    def at(key: str, clients: int) -> LoadResult | None:
        server = by_key.get(key)
        return server.cell(clients) if server else None

    lines = []
    c1, c32 = at("cepage", 1), at("cepage", 32)
    for other, target, what in (
        ("mlflow", TARGET_THROUGHPUT_RATIO, "mlflow"),
        ("fastapi", TARGET_FASTAPI_RATIO, "minimal FastAPI"),
    ):
        o32 = at(other, 32)
        if c32 and o32 and o32.ok_per_s > 0:
            ratio = c32.ok_per_s / o32.ok_per_s
            lines.append(
                _verdict(
                    f"cepage req/s ÷ {what} req/s at 32 clients: **{ratio:.2f}x**",
                    f"target ≥ {target:g}x",
                    ratio >= target,
                )
            )
    two = at("cepage-2w", 32)
    if c32 and two and c32.ok_per_s > 0:
        ratio = two.ok_per_s / c32.ok_per_s
        lines.append(
            _verdict(
                f"cepage 2 workers ÷ 1 worker, req/s at 32 clients: **{ratio:.2f}x**",
                f"target ≥ {TARGET_WORKERS_RATIO:g}x",
                ratio >= TARGET_WORKERS_RATIO,
            )
        )
    lines += proxy_lines(by_key, c32)
    if c1 and floor:
        overhead = c1.p50_ms - floor.p50_ms
        lines.append(
            _verdict(
                f"cepage p50 at 1 client - floor p50: **{overhead:.2f} ms** "
                f"({c1.p50_ms:.2f} - {floor.p50_ms:.3f})",
                f"target ≤ {TARGET_OVERHEAD_MS:g} ms",
                overhead <= TARGET_OVERHEAD_MS,
            )
        )
    if c1:
        lines.append(
            _verdict(
                f"cepage p99 at 1 client: **{c1.p99_ms:.2f} ms**",
                f"target ≤ {TARGET_P99_1_MS:g} ms",
                c1.p99_ms <= TARGET_P99_1_MS,
            )
        )
    f32 = at("fastapi", 32)
    if c32 and f32 and f32.p99_ms > 0:
        ratio = c32.p99_ms / f32.p99_ms
        lines.append(
            _verdict(
                f"cepage p99 ÷ minimal FastAPI p99 at 32 clients: **{ratio:.2f}x** "
                f"({c32.p99_ms:.1f} / {f32.p99_ms:.1f} ms)",
                f"target ≤ {TARGET_P99_32_RATIO:g}x",
                ratio <= TARGET_P99_32_RATIO,
            )
        )
    cepage = by_key.get("cepage")
    if cepage and cepage.cold_start_s is not None and floor:
        gap = cepage.cold_start_s - floor.cold_start_s
        lines.append(
            _verdict(
                f"cepage cold start - floor cold start: **{gap:.1f} s** "
                f"({cepage.cold_start_s:.1f} - {floor.cold_start_s:.1f})",
                f"target ≤ {TARGET_COLD_START_GAP_S:g} s",
                gap <= TARGET_COLD_START_GAP_S,
            )
        )
    one, both = by_key.get("cepage"), by_key.get("cepage-2w")
    if one and both and one.uss_bytes and both.uss_bytes:
        extra = (both.uss_bytes - one.uss_bytes) / MIB
        lines.append(
            _verdict(
                f"unique memory (USS) of a second worker: **{extra:.0f} MiB** "
                f"({both.uss_bytes / MIB:.0f} - {one.uss_bytes / MIB:.0f})",
                f"target ≤ {TARGET_EXTRA_WORKER_USS_MIB:g} MiB",
                extra <= TARGET_EXTRA_WORKER_USS_MIB,
            )
        )
    plain = at("bentoml-plain", 32)
    if c32 and plain and plain.ok_per_s > 0:
        lines.append(
            f"- cepage ÷ a plain BentoML service, req/s at 32 clients: "
            f"**{c32.ok_per_s / plain.ok_per_s:.2f}x** (what cepage's own features cost on top "
            "of the framework; no target)"
        )
    return lines + batching_lines(at)


def proxy_lines(by_key: dict[str, ServerResult], direct32: LoadResult | None) -> list[str]:
    """Target 1 through the prod reverse proxy: 2 replicas behind it against 1 worker reached
    directly, how the requests were spread, and what the proxy costs in front of 1 replica."""
    lines = []
    behind = by_key.get(PROXY_2)
    b32 = behind.cell(32) if behind else None
    if behind and b32 and direct32 and direct32.ok_per_s > 0:
        ratio = b32.ok_per_s / direct32.ok_per_s
        lines.append(
            _verdict(
                f"cepage behind the prod proxy, 2 replicas ÷ 1 worker direct, req/s at 32 "
                f"clients: **{ratio:.2f}x**",
                f"target ≥ {TARGET_WORKERS_RATIO:g}x",
                ratio >= TARGET_WORKERS_RATIO,
            )
        )
    if behind and sum(behind.replica_requests) > 0:
        total = sum(behind.replica_requests)
        shares = " / ".join(f"{100 * n / total:.0f} %" for n in behind.replica_requests)
        lines.append(f"- requests per replica behind the proxy (the whole run): {shares}")
    one = by_key.get(PROXY_1)
    o32 = one.cell(32) if one else None
    if o32 and direct32 and direct32.ok_per_s > 0:
        lines.append(
            f"- the proxy's own cost: 1 replica behind it ÷ 1 worker direct, req/s at 32 "
            f"clients: **{o32.ok_per_s / direct32.ok_per_s:.2f}x** (no target)"
        )
    if b32 and o32 and o32.ok_per_s > 0:
        lines.append(
            f"- behind the proxy, 2 replicas ÷ 1 replica, req/s at 32 clients: "
            f"**{b32.ok_per_s / o32.ok_per_s:.2f}x** (no target)"
        )
    return lines


def batching_lines(at: Callable[[str, int], LoadResult | None]) -> list[str]:
    """Target 3 of issue 19: the forest batched against unbatched, and what forcing batching on
    the linear model does (the measurement leaves it off)."""
    lines = []
    batched, alone = at("cepage-forest", 32), at("cepage-forest-unbatched", 32)
    if batched and alone and alone.ok_per_s > 0:
        ratio = batched.ok_per_s / alone.ok_per_s
        lines.append(
            _verdict(
                f"forest, batched ÷ unbatched req/s at 32 clients: **{ratio:.2f}x**",
                f"target ≥ {TARGET_BATCHED_RATIO:g}x",
                ratio >= TARGET_BATCHED_RATIO,
            )
        )
    batched, alone = at("cepage-forest", 1), at("cepage-forest-unbatched", 1)
    if batched and alone and alone.p99_ms > 0:
        ratio = batched.p99_ms / alone.p99_ms
        lines.append(
            _verdict(
                f"forest, batched ÷ unbatched p99 at 1 client: **{ratio:.2f}x** "
                f"({batched.p99_ms:.2f} / {alone.p99_ms:.2f} ms)",
                f"target ≤ {TARGET_BATCHED_P99_1_RATIO:g}x",
                ratio <= TARGET_BATCHED_P99_1_RATIO,
            )
        )
    forced, linear = at("cepage-batched", 32), at("cepage", 32)
    if forced and linear and linear.ok_per_s > 0:
        lines.append(
            f"- linear model, batching forced on ÷ off (its measured default), req/s at 32 "
            f"clients: **{forced.ok_per_s / linear.ok_per_s:.2f}x** (no target: it shows whether "
            "the measurement's choice was right)"
        )
    return lines


def _ratio(on: float | None, off: float | None) -> float | None:
    if on is None or off is None or math.isnan(on) or math.isnan(off) or off <= 0:
        return None
    return on / off


def _x(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def log_comparison(
    servers: Sequence[ServerResult],
    clients: Sequence[int],
    on_key: str = LOG_ON,
    what: str = "log",
) -> list[str]:
    """A feature's cost: ``on_key`` (the prediction log on, or the shadow challenger) beside
    ``cepage`` (same run), the ratios on ÷ off and the verdicts at 32 clients (or the most
    clients run); empty when either server is missing or failed."""
    by_key = {s.key: s for s in servers if not s.failure}
    off, on = by_key.get(LOG_OFF), by_key.get(on_key)
    if off is None or on is None:
        return []
    lines = [
        f"| clients | req/s {what} off | req/s {what} on | on ÷ off | p50 ms off | p50 ms on "
        "| p99 ms off | p99 ms on | p99 on ÷ off |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for count in clients:
        a, b = off.cell(count), on.cell(count)
        if a is None or b is None:
            continue
        lines.append(
            f"| {count} | {_num(a.ok_per_s, 0)} | {_num(b.ok_per_s, 0)} "
            f"| {_x(_ratio(b.ok_per_s, a.ok_per_s))} | {_ms(a.p50_ms)} | {_ms(b.p50_ms)} "
            f"| {_ms(a.p99_ms)} | {_ms(b.p99_ms)} | {_x(_ratio(b.p99_ms, a.p99_ms))} |"
        )
    rss_off = off.rss_bytes / MIB if off.rss_bytes else None
    rss_on = on.rss_bytes / MIB if on.rss_bytes else None
    lines += [
        "",
        f"Cold start {_num(off.cold_start_s)} s off, {_num(on.cold_start_s)} s on "
        f"({_x(_ratio(on.cold_start_s, off.cold_start_s))}); RSS {_num(rss_off, 0)} MiB off, "
        f"{_num(rss_on, 0)} MiB on ({_x(_ratio(rss_on, rss_off))}).",
        "",
    ]
    judged = LOG_CLIENTS if LOG_CLIENTS in clients else max(clients, default=0)
    a, b = off.cell(judged), on.cell(judged)
    throughput = _ratio(b.ok_per_s, a.ok_per_s) if a and b else None
    p99 = _ratio(b.p99_ms, a.p99_ms) if a and b else None
    per_round = list(
        zip(
            [c for c in off.rounds if c.clients == judged],
            [c for c in on.rounds if c.clients == judged],
            strict=False,
        )
    )
    spread_tp = spread_p99 = ""
    if len(per_round) > 1:
        spread_tp = (
            " (rounds: " + ", ".join(_x(_ratio(b.ok_per_s, a.ok_per_s)) for a, b in per_round) + ")"
        )
        spread_p99 = (
            " (rounds: " + ", ".join(_x(_ratio(b.p99_ms, a.p99_ms)) for a, b in per_round) + ")"
        )
    if throughput is not None:
        lines.append(
            _verdict(
                f"{what} on ÷ off, req/s at {judged} clients: **{throughput:.2f}x**{spread_tp}",
                f"target ≥ {TARGET_LOG_THROUGHPUT:.2f}x",
                throughput >= TARGET_LOG_THROUGHPUT,
            )
        )
    if p99 is not None:
        lines.append(
            _verdict(
                f"{what} on ÷ off, p99 at {judged} clients: **{p99:.2f}x**{spread_p99}",
                f"target ≤ {TARGET_LOG_P99:.2f}x",
                p99 <= TARGET_LOG_P99,
            )
        )
    if on_key == LOG_ON and on.log_rows is not None:
        lines.append("- " + log_rows_sentence(on.log_rows))
    return lines


def log_rows_sentence(rows: LogRows) -> str:
    """What became of the rows, in one sentence."""
    out = rows.outcomes
    counted = (
        "; `/metrics` before the stop: "
        + ", ".join(f"{k} {out.get(k, 0):,}" for k in ("written", "dropped", "failed"))
        + (f" (sampled out {out['sampled_out']:,})" if out.get("sampled_out") else "")
        if out
        else "; `/metrics` unreadable"
        if rows.answered is None
        else f"; `/metrics` without {LOG_METRIC}"
    )
    answered = f"{rows.answered:,}" if rows.answered is not None else "?"
    files = (
        f"{rows.parquet_rows:,} rows in {rows.parquet_files:,} Parquet files after the stop"
        if rows.parquet_rows is not None
        else "the Parquet files could not be read"
    )
    return f"log rows: {answered} predictions answered{counted}; {files}"


def _verdict(figure: str, target: str, met: bool) -> str:
    return f"- {figure} — {target}: {'met' if met else 'MISSED'}"


def render(
    *,
    machine: dict[str, str],
    settings: dict[str, str],
    floor: FloorResult | None,
    servers: Sequence[ServerResult],
    clients: Sequence[int],
    reload: Sequence[str] = (),
) -> str:
    """The whole block printed to the terminal and written into the docs; ``reload``: the
    retrain measurement's lines (bench/reload.py)."""
    notes = [f"- {s.title}: {s.note}" for s in servers if s.note]
    log = log_comparison(servers, clients)
    shadow = log_comparison(servers, clients, SHADOW_ON, "shadow")
    explain = log_comparison(servers, clients, EXPLAIN_ON, "explain")
    parts = [
        "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()),
        "",
        "Run: " + "; ".join(f"{k} {v}" for k, v in settings.items()),
        "",
        results_table(floor, servers, clients),
        "",
        *(["Notes:", *notes, ""] if notes else []),
        "Ratios (this run):",
        "",
        *ratio_lines(floor, servers),
        *(["", "Prediction log on ÷ off (this run, 1 worker each):", "", *log] if log else []),
        *(
            ["", "Shadow challenger on ÷ off (this run, 1 worker each):", "", *shadow]
            if shadow
            else []
        ),
        *(
            ["", "Explanations asked ÷ not (this run, 1 worker each):", "", *explain]
            if explain
            else []
        ),
        *(["", "Retrain → new model answering (this run):", "", *reload] if reload else []),
    ]
    return "\n".join(parts)


def write_between_markers(
    path: Path, name: str, block: str, heading: str, command: str | None = None
) -> None:
    """Replace the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in ``path``.

    A file without the markers gets them (under ``heading``) appended at the end. ``command``
    (default ``python -m NAME-as-module --write``) is named in the block's stamp.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    command = command or f"python -m {name.replace('-', '.')} --write"
    stamp = f"<!-- Written by `{command}`; edit outside the markers only. -->"
    fenced = f"{start}\n{stamp}\n{block}\n{end}"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text and text.index(start) < text.index(end):
        before = text[: text.index(start)]
        after = text[text.index(end) + len(end) :]
        path.write_text(before + fenced + after)
        return
    separator = "\n\n" if text and not text.endswith("\n\n") else ""
    path.write_text(f"{text}{separator}## {heading}\n\n{fenced}\n")
