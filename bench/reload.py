"""Retrain -> new model answering: from the store holding a new model to every worker serving it.

The local stack's service looks at the BentoML store every ``CEPAGE_MODEL_RELOAD_SECONDS``
(bento/reload.py) and installs a newer model in each worker on its own. Here a running service
(several workers, under wrk load the whole time) sees the real ``cepage retrain`` package a new
champion into its store. The figure is the time from the store's ``latest`` pointer naming the new
model (its mtime) to the moment the service's reload counter says every worker has installed it;
wrk's errors over the whole window are the failed requests.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.load import LoadResult, finish_wrk, start_wrk

RELOADS_METRIC = "cepage_model_reloads_total"
TARGET_RELOAD_S = 2.0
LOAD_CLIENTS = 8
RETRAIN_TIMEOUT_S = 600.0
AFTER_S = 2.0  # load kept on after the last worker switched: a request lost in the swap shows
POLL_S = 0.05


@dataclass(frozen=True)
class ReloadResult:
    """One retrain seen by a running service."""

    workers: int
    interval_s: float
    old_version: str
    new_version: str
    seconds: float  # store reached -> every worker serving the new model
    load: LoadResult  # wrk over the retrain, the switch and AFTER_S more


def reload_count(metrics: str) -> int:
    """Reloads of the champion, summed over the workers, from a ``/metrics`` page."""
    return sum(
        round(float(line.rsplit(None, 1)[1]))
        for line in metrics.splitlines()
        if line.startswith(RELOADS_METRIC)
    )


def model_version(answer: str) -> str:
    """The MLflow version a ``/predict`` answer says it was scored by."""
    return str(json.loads(answer)["model"]["version"])


@dataclass(frozen=True)
class Target:
    """The running service under test, and how to reach it."""

    workers: int
    interval_s: float
    latest: Path  # the store's pointer to the newest model of the served name
    read_metrics: Callable[[], str]
    answer: Callable[[], str]  # one /predict answer (JSON text)


def measure_reload(
    target: Target,
    *,
    retrain: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    wrk: str,
    url: str,
    script: Path,
) -> ReloadResult:
    """Run ``retrain`` while wrk loads ``url``; time the switch as the module docstring says.

    Raises:
        BenchError: the retrain failed or promoted nothing, or the workers did not all switch.
    """
    old = model_version(target.answer())
    # The baseline counts the reloads of the workers up now; the retrain trains for several
    # seconds before it packages, long after a 2-worker service has started both.
    pointer = target.latest.read_text()
    reloads = reload_count(target.read_metrics())
    # wrk runs until stopped: its -d is only a bound, far past the retrain's own timeout.
    load = start_wrk(wrk, url, script, clients=LOAD_CLIENTS, duration_s=4 * RETRAIN_TIMEOUT_S)
    try:
        stored, served = _retrain(target, retrain, env, cwd, log, pointer, reloads)
        time.sleep(AFTER_S)
    except BaseException:
        load.kill()
        load.wait()
        raise
    load.send_signal(signal.SIGINT)  # wrk stops and prints its summary
    result = finish_wrk(load, LOAD_CLIENTS, timeout_s=30)
    new = model_version(target.answer())
    if new == old:
        raise BenchError(f"the service still answers with version {old} after the switch")
    return ReloadResult(
        workers=target.workers,
        interval_s=target.interval_s,
        old_version=old,
        new_version=new,
        seconds=served - stored,
        load=result,
    )


def _retrain(
    target: Target,
    retrain: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    pointer: str,
    reloads: int,
) -> tuple[float, float]:
    """Run the retrain to its end; (store reached, every worker serving) on the monotonic clock.
    The retrain never outlives the call, whatever ends it."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(retrain), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        stored = _wait_for_store(target.latest, pointer, proc, log)
        served = _wait_for_workers(target, reloads)
        proc.wait(timeout=RETRAIN_TIMEOUT_S)
        if proc.returncode != 0:
            raise BenchError(f"`cepage retrain` exited {proc.returncode}; see {log}")
        return stored, served
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_store(latest: Path, before: str, proc: subprocess.Popen[bytes], log: Path) -> float:
    """When (``time.monotonic`` clock) the store's pointer started naming a new model."""
    deadline = time.monotonic() + RETRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        if latest.read_text() != before:
            age = time.time() - latest.stat().st_mtime
            return time.monotonic() - max(age, 0.0)
        if proc.poll() is not None:
            raise BenchError(f"`cepage retrain` ended ({proc.returncode}) with no new model; {log}")
        time.sleep(POLL_S)
    raise BenchError(f"no new model in the store after {RETRAIN_TIMEOUT_S:.0f} s; see {log}")


def _wait_for_workers(target: Target, before: int, timeout_s: float = 60.0) -> float:
    """When every worker had installed the new model (the summed reload counter)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if reload_count(target.read_metrics()) - before >= target.workers:
            return time.monotonic()
        time.sleep(POLL_S)
    raise BenchError(f"not every worker reloaded within {timeout_s:.0f} s of the new model")


def reload_lines(result: ReloadResult | None, failure: str | None = None) -> list[str]:
    """The report's lines on the retrain switch."""
    if failure:
        return [f"- retrain → new model answering: FAILED ({failure})"]
    if result is None:
        return []
    failed = result.load.errors
    met = result.seconds <= TARGET_RELOAD_S and failed == 0
    return [
        f"- retrain → new model answering ({result.workers} workers, store polled every "
        f"{result.interval_s:g} s, version {result.old_version} → {result.new_version}): "
        f"**{result.seconds:.2f} s** from the store holding it to every worker serving it; "
        f"{result.load.requests:,} requests at {result.load.clients} clients over the retrain, "
        f"**{failed} failed**, p99 {result.load.p99_ms:.1f} ms — target ≤ {TARGET_RELOAD_S:g} s "
        f"and 0 failed: {'met' if met else 'MISSED'}"
    ]
