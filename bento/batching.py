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

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from bento.predictor import Inputs, Predictor, RowPrediction, UnscorableError
from contracts.features import BOOLEAN, CATEGORY, categories, kind

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
    """Each part's rows scored in one call; if some rows cannot be scored, each part alone (so
    each request gets its own rows' error, numbered as it sent them)."""
    if len(parts) == 1:
        try:
            return [predictor.predict_inputs(parts[0])]
        except UnscorableError as exc:
            return [exc]
    try:
        rows = predictor.predict_inputs(merge(parts))
    except UnscorableError:
        return [outcome for part in parts for outcome in score(predictor, [part])]
    outcomes: list[Outcome] = []
    start = 0
    for part in parts:
        count = len(part.numbers)
        outcomes.append(rows[start : start + count])
        start += count
    return outcomes


class Batcher:
    """Scores requests' rows for one model, merging those that wait together.

    ``executor`` runs the model calls (one thread: a model call at a time, the event loop free
    meanwhile); ``max_rows`` bounds a batch (a request larger than it is scored alone);
    ``observe`` is given each model call's row count (the ``cepage_prediction_batch_rows``
    histogram).
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
        self._task: asyncio.Task[None] | None = None

    async def predict(self, inputs: Inputs) -> list[RowPrediction]:
        """The rows' predictions, scored with whatever else waits.

        Raises:
            UnscorableError: as :meth:`Predictor.predict_inputs`, for this request's rows.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[RowPrediction]] = loop.create_future()
        self._waiting.append((inputs, future))
        if self._task is None:
            self._task = loop.create_task(self._run())
        return await future

    def _take(self) -> list[tuple[Inputs, asyncio.Future[list[RowPrediction]]]]:
        """The oldest waiting requests, up to ``max_rows`` rows (always at least one)."""
        taken, rows = 0, 0
        for inputs, _ in self._waiting:
            count = len(inputs.numbers)
            if taken and rows + count > self._max_rows:
                break
            taken, rows = taken + 1, rows + count
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch = self._take()
                parts = [inputs for inputs, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(
                        self._executor, score, self._predictor, parts
                    )
                except Exception as exc:
                    outcomes = [exc] * len(batch)  # type: ignore[list-item]
                if self._observe is not None:
                    self._observe(sum(len(p.numbers) for p in parts))
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # the client went away
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._task = None
