"""bench.report.ratio_lines and bench.reload: issue 19's targets, met or missed by made-up
figures (no timing here: the benchmark itself measures)."""

from __future__ import annotations

from bench.load import LoadResult
from bench.reload import ReloadResult, model_version, reload_count, reload_lines
from bench.report import FloorResult, ServerResult, ratio_lines


def cell(clients: int, rps: float, p50: float, p99: float) -> LoadResult:
    return LoadResult(
        clients=clients, requests=1000, ok_per_s=rps, p50_ms=p50, p99_ms=p99, errors=0
    )


MIB = 2**20


def server(key: str, *cells: LoadResult, cold: float = 3.0, uss: int = 0) -> ServerResult:
    result = ServerResult(key=key, title=key, cold_start_s=cold, uss_bytes=uss * MIB or None)
    result.cells = list(cells)
    return result


FLOOR = FloorResult(
    calls_per_s=3000, p50_ms=0.3, p99_ms=0.6, calls=1000, cold_start_s=2.8,
    rss_bytes=0, model="m", estimator="e",
)  # fmt: skip


def lines(*servers: ServerResult) -> str:
    return "\n".join(ratio_lines(FLOOR, list(servers)))


def test_every_target_met() -> None:
    text = lines(
        server("cepage", cell(1, 900, 1.2, 4.0), cell(32, 1000, 30.0, 60.0), cold=3.2, uss=300),
        server("cepage-2w", cell(32, 1700, 18.0, 40.0), uss=480),
        server("fastapi", cell(1, 900, 1.1, 2.0), cell(32, 1000, 30.0, 50.0)),
        server("mlflow", cell(32, 200, 150.0, 300.0)),
        server("bentoml-plain", cell(32, 800, 40.0, 80.0)),
    )
    assert "2 workers ÷ 1 worker, req/s at 32 clients: **1.70x** — target ≥ 1.6x: met" in text
    assert "÷ minimal FastAPI req/s at 32 clients: **1.00x** — target ≥ 1x: met" in text
    assert "÷ mlflow req/s at 32 clients: **5.00x** — target ≥ 2x: met" in text
    assert "floor p50: **0.90 ms** (1.20 - 0.300) — target ≤ 1 ms: met" in text
    assert "p99 at 1 client: **4.00 ms** — target ≤ 5 ms: met" in text
    assert "at 32 clients: **1.20x** (60.0 / 50.0 ms) — target ≤ 1.2x: met" in text
    assert "floor cold start: **0.4 s** (3.2 - 2.8) — target ≤ 0.5 s: met" in text
    assert "plain BentoML service, req/s at 32 clients: **1.25x**" in text
    assert "second worker: **180 MiB** (480 - 300) — target ≤ 200 MiB: met" in text
    assert "MISSED" not in text


def test_every_target_missed() -> None:
    text = lines(
        server("cepage", cell(1, 500, 1.4, 51.0), cell(32, 600, 50.0, 360.0), cold=5.2, uss=300),
        server("cepage-2w", cell(32, 366, 80.0, 190.0), uss=600),
        server("fastapi", cell(32, 650, 45.0, 120.0)),
    )
    assert text.count("MISSED") == 7, text
    assert "mlflow" not in text and "plain BentoML" not in text


def test_a_failed_server_leaves_its_lines_out() -> None:
    failed = server("cepage-2w", cell(32, 1700, 18.0, 40.0))
    failed.failure = "exited (1)"
    text = lines(server("cepage", cell(32, 1000, 30.0, 60.0)), failed)
    assert "2 workers" not in text


def test_batching_targets_met_and_missed() -> None:
    met = lines(
        server("cepage", cell(32, 1000, 30.0, 60.0)),
        server("cepage-forest", cell(1, 250, 4.0, 5.0), cell(32, 900, 35.0, 70.0)),
        server("cepage-forest-unbatched", cell(1, 250, 4.0, 5.5), cell(32, 280, 110.0, 130.0)),
        server("cepage-batched", cell(32, 800, 40.0, 80.0)),
    )
    assert "batched ÷ unbatched req/s at 32 clients: **3.21x** — target ≥ 3x: met" in met
    assert "p99 at 1 client: **0.91x** (5.00 / 5.50 ms) — target ≤ 1x: met" in met
    assert "batching forced on ÷ off (its measured default), req/s at 32 clients: **0.80x**" in met
    missed = lines(
        server("cepage-forest", cell(1, 250, 4.0, 7.0), cell(32, 500, 60.0, 90.0)),
        server("cepage-forest-unbatched", cell(1, 250, 4.0, 5.0), cell(32, 280, 110.0, 130.0)),
    )
    assert missed.count("MISSED") == 2, missed
    assert "forced on" not in missed


RELOAD_METRICS = """\
# HELP cepage_model_reloads_total Newer models swapped in without a restart.
# TYPE cepage_model_reloads_total counter
cepage_model_reloads_total 2.0
cepage_model_reloads_total{worker="2"} 1.0
cepage_predictions_total{label="Barolo",model_version="2"} 7.0
"""


def test_reload_count_sums_the_workers_and_reads_nothing_else() -> None:
    assert reload_count(RELOAD_METRICS) == 3
    assert reload_count("# TYPE cepage_model_reloads_total counter\n") == 0


def test_model_version_is_read_from_a_predict_answer() -> None:
    assert model_version('{"model": {"name": "m", "version": "12"}, "predictions": []}') == "12"


def reload_result(seconds: float, errors: int) -> ReloadResult:
    load = LoadResult(clients=8, requests=5000, ok_per_s=900, p50_ms=2, p99_ms=40, errors=errors)
    return ReloadResult(
        workers=2, interval_s=1, old_version="1", new_version="2", seconds=seconds, load=load
    )


def test_the_retrain_target_needs_both_the_time_and_no_failed_request() -> None:
    assert reload_lines(reload_result(0.9, 0))[0].endswith(": met")
    assert "**0.90 s**" in reload_lines(reload_result(0.9, 0))[0]
    assert reload_lines(reload_result(2.5, 0))[0].endswith("MISSED")
    assert reload_lines(reload_result(0.9, 1))[0].endswith("MISSED")
    assert reload_lines(None, "no new model")[0].endswith("FAILED (no new model)")
    assert reload_lines(None) == []


def test_the_cold_start_profile_finds_bentomls_worker_by_the_module_bentoml_runs() -> None:
    # bench/cold_start.py splits a start at the worker's process start, found by its command:
    # a BentoML that runs its workers from another module would leave that column empty.
    from _bentoml_impl.server import serving

    from bench.cold_start import WORKER_MODULE

    assert serving._SERVICE_WORKER_SCRIPT == WORKER_MODULE


def test_the_cold_start_split_is_the_median_of_each_part() -> None:
    from bench.cold_start import ServerProfile, Start, render

    served = ServerProfile("cepage", "cepage", [Start(3.0, 1.0), Start(4.0, 1.5), Start(9.0, 1.2)])
    single = ServerProfile("fastapi", "fastapi", [Start(2.0), Start(2.5), Start(2.2)])
    block = render([served, single], {"import bentoml": 0.5}, rounds=3)
    # Worker started at 1.2 s (median), worker's part 2.5 s (median of 2.0, 2.5, 7.8), total 4.0.
    assert "| cepage | 1.20 | 2.50 | 4.00 |" in block
    assert "| fastapi | — | — | 2.20 |" in block
    assert "| import bentoml | 0.50 |" in block
