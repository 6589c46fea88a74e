"""bench.report / bench.servers: the prediction log's on ÷ off comparison (pure functions, no
timing: the figures are made up)."""

from __future__ import annotations

from bench.load import LoadResult
from bench.report import LogRows, ServerResult, log_comparison, merge_rounds, render
from bench.servers import SERVERS, log_rows_from_metrics, with_log_setting


def cell(clients: int, rps: float, p99: float) -> LoadResult:
    return LoadResult(
        clients=clients, requests=1000, ok_per_s=rps, p50_ms=1.0, p99_ms=p99, errors=0
    )


def server(key: str, *cells: LoadResult, **kw: object) -> ServerResult:
    result = ServerResult(key=key, title=key, cold_start_s=3.0, rss_bytes=400 * 2**20, **kw)  # type: ignore[arg-type]
    result.cells = list(cells)
    result.rounds = list(cells)
    return result


def test_targets_met_and_missed_at_32_clients() -> None:
    off = server("cepage", cell(1, 1000, 3.0), cell(32, 1000, 200.0))
    ok = server("cepage-log", cell(1, 990, 3.0), cell(32, 905, 239.0))
    slow = server("cepage-log", cell(1, 990, 3.0), cell(32, 890, 241.0))
    met = "\n".join(log_comparison([off, ok], [1, 32]))
    assert "req/s at 32 clients: **0.91x** — target ≥ 0.90x: met" in met
    assert "p99 at 32 clients: **1.20x** — target ≤ 1.20x: met" in met
    missed = "\n".join(log_comparison([off, slow], [1, 32]))
    assert "**0.89x** — target ≥ 0.90x: MISSED" in missed
    assert "**1.21x** — target ≤ 1.20x: MISSED" in missed


def test_no_comparison_without_both_servers() -> None:
    off = server("cepage", cell(32, 1000, 200.0))
    failed = server("cepage-log", failure="exited (1)")
    assert log_comparison([off], [32]) == []
    assert log_comparison([off, failed], [32]) == []


def test_rows_and_rounds_in_the_block() -> None:
    rows = LogRows(
        answered=5, outcomes={"written": 4, "dropped": 1}, parquet_rows=5, parquet_files=2
    )
    off = server("cepage", cell(32, 1000, 200.0), cell(32, 800, 100.0), cell(32, 900, 300.0))
    on = server(
        "cepage-log",
        cell(32, 900, 200.0),
        cell(32, 800, 100.0),
        cell(32, 900, 300.0),
        log_rows=rows,
    )
    off.cells, on.cells = merge_rounds(off.rounds, [32]), merge_rounds(on.rounds, [32])
    assert off.cells[0].ok_per_s == 900 and off.cells[0].requests == 3000
    block = render(machine={}, settings={}, floor=None, servers=[off, on], clients=[32])
    assert "Prediction log on ÷ off" in block
    assert "(rounds: 0.90x, 1.00x, 1.00x)" in block
    assert "written 4, dropped 1, failed 0; 5 rows in 2 Parquet files" in block


def test_metrics_and_environment() -> None:
    text = (
        "# TYPE cepage_prediction_log_rows_total counter\n"
        'cepage_prediction_log_rows_total{log="predictions",outcome="written"} 3000.0\n'
        'cepage_prediction_log_rows_total{log="feedback",outcome="written"} 7.0\n'
        'cepage_prediction_log_rows_total_created{log="predictions",outcome="written"} 1.7e9\n'
    )
    assert log_rows_from_metrics(text) == {"written": 3000}
    caller = {"CEPAGE_PREDICTION_LOG": "/data", "CEPAGE_PREDICTION_LOG_SAMPLE": "0.1", "X": "y"}
    from pathlib import Path

    home = Path("/tmp/nonexistent-bench-home")
    assert with_log_setting(caller, SERVERS["cepage"], home) == {
        "X": "y",
        "CEPAGE_PREDICTION_LOG": "off",
    }
    on = with_log_setting(caller, SERVERS["cepage-log"], home)
    assert on == {"X": "y", "CEPAGE_PREDICTION_LOG": str(home / "cepage-log-production")}


def test_the_shadow_pair_is_compared_and_run_with_cepage() -> None:
    from bench.report import SHADOW_ON
    from bench.serving import groups

    off = server("cepage", cell(1, 1000, 3.0), cell(32, 1000, 200.0))
    shadow = server(SHADOW_ON, cell(1, 950, 3.1), cell(32, 700, 260.0))
    lines = "\n".join(log_comparison([off, shadow], [1, 32], SHADOW_ON, "shadow"))
    assert "| clients | req/s shadow off | req/s shadow on |" in lines
    assert "shadow on ÷ off, req/s at 32 clients: **0.70x** — target ≥ 0.90x: MISSED" in lines
    assert "log rows" not in lines
    block = render(machine={}, settings={}, floor=None, servers=[off, shadow], clients=[1, 32])
    assert "Shadow challenger on ÷ off (this run, 1 worker each):" in block
    order = ["cepage", "cepage-log", "mlflow", SHADOW_ON]
    assert groups(order, True) == [("cepage", "cepage-log", SHADOW_ON), ("mlflow",)]
    assert groups(order, False) == [(k,) for k in order]
    assert groups(["mlflow", SHADOW_ON], True) == [("mlflow",), (SHADOW_ON,)]
