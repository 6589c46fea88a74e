"""Adaptive batching: the rows of requests that arrive together scored in one model call.

A random forest answers 1 row in about the time it answers 32 (its cost is per tree, not per
row), so a worker that scores each request alone spends most of its time repeating that fixed
cost. Here each request's checked rows wait on a future; a single task scores whatever is
waiting in one ``predict_proba`` call on a thread, and while it does, the event loop keeps reading
requests, which form the next batch. There is no timer: a lone request is scored at once, a batch
is only ever what arrived while the previous one was being scored, so the latency at 1 client
stays the unbatched one (plus a thread hop) and the batches grow with the load.

Whether a model is batched is decided from a measurement made when it is packaged
(:func:`measure`, recorded with the model in the BentoML store): the cost of 1 row against N rows
on the real estimator. :func:`pays` says yes when N rows cost much less than N times one row *and*
one row costs more than the service's own work per request; a linear model (a fraction of a
millisecond either way) stays unbatched, where the thread hop would cost more than it saves.
``CEPAGE_BATCHING`` overrides the decision (on, off, auto).

Why not BentoML's adaptive batching (``@bentoml.api(batchable=True)``): it batches the arguments
of an API with a batch dimension, and waits up to ``max_latency_ms`` for a batch to fill, a
latency cost at low load. Here a batch merges the rows of already-validated requests of any
size, and never waits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bento.predictor import Inputs, Predictor, RowPrediction, UnscorableError
from contracts.features import BOOLEAN, CATEGORY, categories, kind

logger = logging.getLogger("cepage.service")

# The N of the packaging measurement: the bench's 32 concurrent clients of one row each.
MEASURE_ROWS = 32
# A model whose one row costs less than this is not batched: the service's own work per
# request (parsing, checks, metrics, the answer) is ~0.3-0.5 ms on the bench's machines, so
# such a model leaves little to save, and the hop to the scoring thread eats part of it.
MIN_ROW_MS = 1.0
# Batching pays when N rows cost at most this share of N separate rows.
MAX_BATCH_SHARE = 1 / 3


@dataclass(frozen=True)
class BatchProfile:
    """The cost of one model call on 1 row and on ``rows`` rows (milliseconds, best of runs)."""

    rows: int
    one_ms: float
    batch_ms: float

    def to_json(self) -> str:
        return json.dumps({"rows": self.rows, "one_ms": self.one_ms, "batch_ms": self.batch_ms})

    @classmethod
    def from_json(cls, text: Any) -> BatchProfile | None:
        """The profile stored with a model; None when there is none or it does not parse."""
        try:
            data = json.loads(text)
            return cls(int(data["rows"]), float(data["one_ms"]), float(data["batch_ms"]))
        except (TypeError, ValueError, KeyError):
            return None

    def speedup(self) -> float:
        """Rows per second batched over rows per second one at a time (model time only)."""
        return self.rows * self.one_ms / self.batch_ms if self.batch_ms > 0 else 1.0


def pays(profile: BatchProfile | None) -> bool:
    """Whether batching pays for a model with this profile (no profile: it does not)."""
    if profile is None:
        return False
    return (
        profile.one_ms >= MIN_ROW_MS
        and profile.batch_ms <= profile.rows * profile.one_ms * MAX_BATCH_SHARE
    )


def decide(mode: str, profile: BatchProfile | None) -> bool:
    """``CEPAGE_BATCHING``'s value applied to a model's profile."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    return pays(profile)


def typical_records(schema: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` copies of a record any model of this schema takes: each number at its training
    median (or midrange), each category at its first value, each boolean false."""
    record: dict[str, Any] = {}
    for feature in schema["features"]:
        name = feature["name"]
        which = kind(feature)
        if which == CATEGORY:
            values: list[Any] = categories(feature) or [None]
            record[name] = values[0]
        elif which == BOOLEAN:
            record[name] = False
        else:
            low, high = feature.get("min", 0.0), feature.get("max", 0.0)
            record[name] = feature.get("median", (low + high) / 2)
    return [dict(record) for _ in range(count)]


def measure(predictor: Predictor, rows: int = MEASURE_ROWS, runs: int = 15) -> BatchProfile:
    """The serving path's cost of scoring 1 row and ``rows`` rows (best of ``runs`` each: the
    floor, which noise only adds to)."""
    schema = predictor.bundle.schema
    single = predictor.inputs(typical_records(schema, 1))
    batch = predictor.inputs(typical_records(schema, rows))
    predictor.predict_inputs(batch)  # warm: first-call allocations are not the model's cost

    def best(inputs: Inputs) -> float:
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            predictor.predict_inputs(inputs)
            times.append(time.perf_counter() - began)
        return min(times) * 1000

    return BatchProfile(rows=rows, one_ms=best(single), batch_ms=best(batch))


def measure_model_dir(model_dir: Path, sha256: str | None) -> BatchProfile:
    """:func:`measure` on an MLflow model directory, loaded as the service loads it (the
    allow-list, the digest the gate recorded).

    Raises:
        ModelLoadError: the service could not serve it.
    """
    import yaml

    from bento.loader import ModelLoadError, load_estimator
    from bento.predictor import ModelBundle, ModelInfo, strip_feature_names

    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    estimator = load_estimator(model_dir, mlmodel, sha256)
    schema = (mlmodel.get("metadata") or {}).get("feature_schema") or {}
    if not schema.get("features"):
        raise ModelLoadError("it carries no feature schema (not trained by `cepage train`)")
    if not hasattr(estimator, "predict_proba"):
        raise ModelLoadError("it cannot give probabilities (no predict_proba)")
    bundle = ModelBundle(strip_feature_names(estimator), schema, ModelInfo("", "", "", "", ""))
    return measure(Predictor(bundle))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bento.batching MODEL_DIR [--sha256 HEX]``: the model's batch profile as JSON
    on stdout (what `cepage package` stores with it); exit 1 with the reason when the service
    could not serve it."""
    parser = argparse.ArgumentParser(prog="python -m bento.batching", description=__doc__)
    parser.add_argument("model_dir", type=Path, help="An MLflow model directory (skops).")
    parser.add_argument("--sha256", help="The digest its model file must have.")
    args = parser.parse_args(argv)
    try:
        profile = measure_model_dir(args.model_dir, args.sha256)
    except Exception as exc:  # whatever it is, the service could not serve it either
        print(str(exc) or type(exc).__name__, file=sys.stderr)
        return 1
    print(profile.to_json())
    return 0


def merge(parts: Sequence[Inputs]) -> Inputs:
    """One :class:`Inputs` holding every part's rows, in order."""
    first = parts[0].model_input
    if isinstance(first, np.ndarray):
        model_input: Any = np.concatenate([p.model_input for p in parts])
    else:
        import pandas as pd

        model_input = pd.concat([p.model_input for p in parts], ignore_index=True)
    numbers = np.concatenate([p.numbers for p in parts])
    codes = {j: np.concatenate([p.codes[j] for p in parts]) for j in parts[0].codes}
    return Inputs(model_input, numbers, codes)


Outcome = list[RowPrediction] | UnscorableError


def score(predictor: Predictor, parts: Sequence[Inputs]) -> list[Outcome]:
    """Each part's rows scored in one call. Rows that cannot be scored fail only the part (the
    request) that sent them, numbered as it sent them; the other parts are scored again together.
    """
    try:
        rows = predictor.predict_inputs(merge(parts) if len(parts) > 1 else parts[0])
    except UnscorableError as exc:
        return _split_unscorable(predictor, parts, exc.rows)
    outcomes: list[Outcome] = []
    start = 0
    for part in parts:
        count = len(part.numbers)
        outcomes.append(rows[start : start + count])
        start += count
    return outcomes


def _alone(predictor: Predictor, part: Inputs) -> Outcome:
    try:
        return predictor.predict_inputs(part)
    except UnscorableError as exc:
        return exc


def _split_unscorable(
    predictor: Predictor, parts: Sequence[Inputs], bad_rows: Sequence[int]
) -> list[Outcome]:
    """The parts that own ``bad_rows`` (indices in the merged rows) fail with their own rows;
    the others are scored together again."""
    bad: dict[int, list[int]] = {}
    start = 0
    for index, part in enumerate(parts):
        count = len(part.numbers)
        owned = [row - start for row in bad_rows if start <= row < start + count]
        if owned:
            bad[index] = owned
        start += count
    good = [index for index in range(len(parts)) if index not in bad]
    if not bad:  # the rows named fall in no part (cannot happen): each part alone, to be safe
        return [_alone(predictor, part) for part in parts]
    rescored = score(predictor, [parts[i] for i in good]) if good else []
    again = iter(rescored)
    return [UnscorableError(bad[i]) if i in bad else next(again) for i in range(len(parts))]


# Rows the queue may hold, in full batches: past it a request is refused at once (503) instead of
# queued. A queued request waits for about this many model calls, not until the request timeout.
QUEUE_BATCHES = 4


class QueueFullError(RuntimeError):
    """The batcher already holds ``QUEUE_BATCHES`` batches of rows: the request is not queued."""


class Batcher:
    """Scores requests' rows for one model, merging those that wait together.

    ``executor`` runs the model calls (one thread: a model call at a time, the event loop free
    meanwhile); ``max_rows`` bounds a batch (a request larger than it is scored alone), and
    ``QUEUE_BATCHES`` times it the rows waiting; ``observe`` is given each model call's row
    count (the ``cepage_prediction_batch_rows`` histogram).
    """

    def __init__(
        self,
        predictor: Predictor,
        executor: Executor,
        max_rows: int,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self._predictor = predictor
        self._executor = executor
        self._max_rows = max_rows
        self._observe = observe
        self._waiting: list[tuple[Inputs, asyncio.Future[list[RowPrediction]]]] = []
        self._waiting_rows = 0
        self._task: asyncio.Task[None] | None = None

    async def predict(self, inputs: Inputs) -> list[RowPrediction]:
        """The rows' predictions, scored with whatever else waits.

        Raises:
            UnscorableError: as :meth:`Predictor.predict_inputs`, for this request's rows.
            QueueFullError: the queue holds ``QUEUE_BATCHES`` batches already (an empty queue takes
                any request, so one larger than that is still scored).
        """
        rows = len(inputs.numbers)
        # Only while the scoring task runs: a task that ended takes the queue over afresh below.
        # Rows of a request cancelled meanwhile still count until the task's next take.
        running = self._task is not None and not self._task.done()
        if running and self._waiting_rows + rows > QUEUE_BATCHES * self._max_rows:
            raise QueueFullError(f"{self._waiting_rows} rows already wait to be scored")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[RowPrediction]] = loop.create_future()
        self._waiting.append((inputs, future))
        self._waiting_rows += rows
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await future

    def _take(self) -> list[tuple[Inputs, asyncio.Future[list[RowPrediction]]]]:
        """The oldest waiting requests, up to ``max_rows`` rows (always at least one)."""
        # A request whose client went away (its future cancelled: BentoML's timeout) is dropped
        # rather than scored for nobody.
        self._waiting = [(i, f) for i, f in self._waiting if not f.done()]
        taken, rows = 0, 0
        for inputs, _ in self._waiting:
            count = len(inputs.numbers)
            if taken and rows + count > self._max_rows:
                break
            taken, rows = taken + 1, rows + count
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        self._waiting_rows = sum(len(inputs.numbers) for inputs, _ in self._waiting)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._take()
            if not batch:
                return
            parts = [inputs for inputs, _ in batch]
            try:
                outcomes: list[Outcome | BaseException] = list(
                    await loop.run_in_executor(self._executor, score, self._predictor, parts)
                )
            except Exception as exc:  # each request gets it, as it would unbatched
                outcomes = [exc] * len(batch)
            except BaseException:  # cancelled (shutdown): no request of the batch hangs
                for _, future in batch + self._waiting:
                    future.cancel()
                self._waiting, self._waiting_rows = [], 0
                raise
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the client went away
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            if self._observe is not None:
                try:
                    self._observe(sum(len(p.numbers) for p in parts))
                except Exception:  # a metric must never stop the scoring
                    logger.exception("Could not record a batch's size")


if __name__ == "__main__":
    sys.exit(main())
