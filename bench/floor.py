"""The floor: the served model's predict in-process, one record per call, no HTTP.

Run as ``python -m bench.floor`` in a process whose BENTOML_HOME points at the store: it loads the
model the way the service does (``bento.loader.load_bundle``, ``bento.predictor.Predictor``) and
prints one JSON object: the record used (every feature at its training median, which the servers
are then sent), per-call latency percentiles, calls per second, the time from process start to the
first prediction and the process's RSS.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench import clock
from bench.stats import percentile


def median_record(schema: dict[str, Any]) -> dict[str, float]:
    """A valid record: every feature at its training median."""
    return {f["name"]: float(f["median"]) for f in schema["features"]}


def time_calls(
    call: Any, *, duration_s: float, max_calls: int, warmup_calls: int = 200
) -> tuple[list[float], float]:
    """Run ``call()`` until ``duration_s`` or ``max_calls``; per-call seconds and wall time."""
    for _ in range(warmup_calls):
        call()
    samples: list[float] = []
    start = time.perf_counter()
    deadline = start + duration_s
    for _ in range(max_calls):
        before = time.perf_counter()
        call()
        after = time.perf_counter()
        samples.append(after - before)
        if after >= deadline:
            break
    return samples, time.perf_counter() - start


def measure(duration_s: float, max_calls: int) -> dict[str, Any]:
    """Load the newest model of the store and time ``Predictor.predict`` on one record."""
    import psutil

    from bento.loader import latest_tag, load_bundle
    from bento.production_log import keep_arrow_unloaded

    keep_arrow_unloaded()  # as a worker of the default service (no prediction log) loads it
    from bento.predictor import Predictor
    from bento.settings import model_name

    bundle = load_bundle(latest_tag(model_name()))
    predictor = Predictor(bundle)
    record = median_record(bundle.schema)
    records = [record]
    predictor.predict(records)
    cold_start_s = clock.age()  # not psutil's create_time(): early by up to 1 s (bench/clock.py)
    me = psutil.Process()
    samples, wall = time_calls(
        lambda: predictor.predict(records), duration_s=duration_s, max_calls=max_calls
    )
    return {
        "record": record,
        "model": bundle.info.bento_model,
        "estimator": type(bundle.estimator[-1]).__name__,
        "calls": len(samples),
        "calls_per_s": len(samples) / wall,
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "cold_start_s": cold_start_s,
        "rss_bytes": int(me.memory_info().rss),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the floor's figures as one JSON object on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="Seconds of calls.")
    parser.add_argument("--max-calls", type=int, default=200_000, help="Upper bound on calls.")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.duration, args.max_calls)))


if __name__ == "__main__":
    main()
