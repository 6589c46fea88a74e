"""Adaptive batching (bento/batching.py): the decision from the packaging measurement, and the
batcher merging concurrent requests into one model call with each its own answer."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bento.batching import (
    MEASURE_ROWS,
    QUEUE_BATCHES,
    Batcher,
    BatchProfile,
    QueueFullError,
    decide,
    measure,
    pays,
    typical_records,
)
from bento.predictor import (
    ModelBundle,
    ModelInfo,
    Predictor,
    RowPrediction,
    UnscorableError,
    strip_feature_names,
)
from tests.support.mixed_data import customers
from train.data import load_dataset
from train.pipeline import build_pipeline
from train.schema import build_feature_schema

INFO = ModelInfo(name="m", version="1", bento_model="m:1", run_id="r", created_at="t")


def fitted(model: str, data: Path | None = None, target: str | None = None) -> Predictor:
    """A pipeline of train/pipeline.py fitted as `cepage train` fits it, served as the loader
    serves it."""
    dataset = load_dataset(data, target)
    schema = build_feature_schema(dataset)
    pipeline = build_pipeline(model, {}, 42, schema["features"]).fit(
        dataset.features, dataset.target
    )
    bundle = ModelBundle(strip_feature_names(pipeline), schema, INFO)
    return Predictor(bundle)


@pytest.fixture(scope="module")
def wine_forest() -> Predictor:
    return fitted("forest")


@pytest.fixture(scope="module")
def customers_linear(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    path = tmp_path_factory.mktemp("batching") / "customers.csv"
    customers().to_csv(path, index=False)
    return fitted("linear", path, "churned?")


def test_batching_pays_for_a_model_whose_rows_share_a_fixed_cost() -> None:
    forest = BatchProfile(rows=32, one_ms=6.7, batch_ms=6.8)  # docs/performance.md's figures
    linear = BatchProfile(rows=32, one_ms=0.18, batch_ms=0.31)
    per_row = BatchProfile(rows=32, one_ms=2.0, batch_ms=60.0)  # each row costs the same
    assert pays(forest)
    assert not pays(linear)  # cheaper than the service's own work per request
    assert not pays(per_row)  # nothing shared to save
    assert not pays(None)  # packaged before the measurement


def test_the_setting_overrides_the_measurement() -> None:
    forest = BatchProfile(rows=32, one_ms=3.5, batch_ms=3.9)
    assert decide("auto", forest) and not decide("off", forest)
    assert decide("on", None) and not decide("auto", None)


def test_a_profile_round_trips_and_a_bad_one_is_none() -> None:
    profile = BatchProfile(rows=32, one_ms=3.5, batch_ms=3.9)
    assert BatchProfile.from_json(profile.to_json()) == profile
    assert profile.speedup() == pytest.approx(32 * 3.5 / 3.9)
    for bad in (None, "", "{", '{"rows": 32}', "[]", 3):
        assert BatchProfile.from_json(bad) is None


@pytest.mark.parametrize("which", ["wine_forest", "customers_linear"])
def test_the_measurement_scores_records_any_model_of_the_schema_takes(
    which: str, request: pytest.FixtureRequest
) -> None:
    predictor: Predictor = request.getfixturevalue(which)
    records = typical_records(predictor.bundle.schema, 3)
    assert predictor.check(records, 10) == []
    profile = measure(predictor, runs=3)
    assert profile.rows == MEASURE_ROWS
    assert profile.one_ms > 0 and profile.batch_ms > 0


def test_a_forest_measures_as_worth_batching(wine_forest: Predictor) -> None:
    # The forest's cost is per tree: 32 rows cost far less than 32 times one.
    profile = measure(wine_forest, runs=5)
    assert profile.batch_ms < profile.rows * profile.one_ms * 0.5, profile


class CountingEstimator:
    """Wraps an estimator: counts predict_proba calls and their rows; the first call waits on
    ``gate`` so that requests pile up behind it, as under load."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.classes_ = inner.classes_
        self.calls: list[int] = []
        self.gate = threading.Event()

    def predict_proba(self, matrix: Any) -> np.ndarray:
        if not self.calls:
            self.gate.wait(5)
        self.calls.append(len(matrix))
        result: np.ndarray = self.inner.predict_proba(matrix)
        return result


def counting(predictor: Predictor) -> tuple[Predictor, CountingEstimator]:
    bundle = predictor.bundle
    estimator = CountingEstimator(bundle.estimator)
    return Predictor(ModelBundle(estimator, bundle.schema, bundle.info)), estimator


async def score_together(
    predictor: Predictor,
    estimator: CountingEstimator,
    requests: list[list[dict[str, Any]]],
    max_rows: int = 1000,
    cancel: tuple[int, ...] = (),
) -> list[Any]:
    """Each request's outcome when they all arrive while the first one is being scored;
    ``cancel``: the requests whose client goes away (BentoML's timeout cancels their task)
    before the first one's call ends."""
    with ThreadPoolExecutor(1) as executor:
        batcher = Batcher(predictor, executor, max_rows=max_rows)
        first = asyncio.ensure_future(batcher.predict(predictor.inputs(requests[0])))
        await asyncio.sleep(0.05)  # the first is on the scoring thread, held at the gate
        rest = [
            asyncio.ensure_future(batcher.predict(predictor.inputs(records)))
            for records in requests[1:]
        ]
        await asyncio.sleep(0)
        for index in cancel:
            rest[index - 1].cancel()
        estimator.gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)


def same(got: list[RowPrediction], expected: list[RowPrediction]) -> bool:
    """The same predictions, probabilities equal up to the last bits a BLAS may change with the
    shape of a call."""
    return len(got) == len(expected) and all(
        g.label == e.label
        and g.out_of_range == e.out_of_range
        and g.probabilities == pytest.approx(e.probabilities, rel=1e-12, abs=1e-15)
        for g, e in zip(got, expected, strict=True)
    )


@pytest.mark.parametrize("which", ["wine_forest", "customers_linear"])
def test_requests_waiting_together_are_scored_in_one_call_each_with_its_own_rows(
    which: str, request: pytest.FixtureRequest
) -> None:
    served: Predictor = request.getfixturevalue(which)
    predictor, estimator = counting(served)
    base = typical_records(served.bundle.schema, 1)[0]
    numeric = next(
        f["name"] for f in served.bundle.schema["features"] if "median" in f and "max" in f
    )
    top = next(f["max"] for f in served.bundle.schema["features"] if f["name"] == numeric)
    # Different rows per request, so a mix-up of whose rows are whose would show.
    requests = [[{**base, numeric: top * (i + 1) / 8} for _ in range(1 + i % 3)] for i in range(8)]
    outcomes = asyncio.run(score_together(predictor, estimator, requests))
    # The first alone (it was being scored when the others came), the 7 others in one call.
    assert estimator.calls == [1, sum(len(r) for r in requests[1:])]
    for records, outcome in zip(requests, outcomes, strict=True):
        assert same(outcome, served.predict(records))  # the same answer as scored alone


def test_rows_that_cannot_be_scored_fail_only_their_own_request(wine_forest: Predictor) -> None:
    predictor, estimator = counting(wine_forest)
    base = typical_records(wine_forest.bundle.schema, 1)[0]
    name = wine_forest.features[0]
    good, bad = [base, base], [base, {**base, name: float("inf")}, base]
    outcomes = asyncio.run(score_together(predictor, estimator, [good, good, bad, good]))
    assert outcomes[0] == outcomes[1] == outcomes[3] == wine_forest.predict(good)
    assert isinstance(outcomes[2], UnscorableError)
    assert outcomes[2].rows == [1]  # numbered as its own request sent them


def test_a_batch_never_goes_over_max_rows(wine_forest: Predictor) -> None:
    predictor, estimator = counting(wine_forest)
    record = typical_records(wine_forest.bundle.schema, 1)[0]
    outcomes = asyncio.run(score_together(predictor, estimator, [[record] * 2] * 6, max_rows=5))
    assert all(len(rows) == 2 for rows in outcomes)
    assert max(estimator.calls) <= 5 and sum(estimator.calls) == 12, estimator.calls


def test_a_full_queue_refuses_at_once_and_an_empty_one_takes_any_request(
    wine_forest: Predictor,
) -> None:
    predictor, estimator = counting(wine_forest)
    record = typical_records(wine_forest.bundle.schema, 1)[0]
    # max_rows 2: the queue holds QUEUE_BATCHES * 2 rows behind the request being scored.
    cap = QUEUE_BATCHES * 2
    requests = [[record]] * (1 + cap + 2)
    outcomes = asyncio.run(score_together(predictor, estimator, requests, max_rows=2))
    assert all(len(rows) == 1 for rows in outcomes[: 1 + cap])
    assert all(isinstance(o, QueueFullError) for o in outcomes[1 + cap :]), outcomes[-2:]
    assert sum(estimator.calls) == 1 + cap  # the refused ones were never scored
    alone, estimator = counting(wine_forest)
    estimator.gate.set()
    big = asyncio.run(score_together(alone, estimator, [[record] * (cap + 5)], max_rows=2))
    assert len(big[0]) == cap + 5  # larger than the queue, but nothing else waited


def test_the_batching_setting_is_auto_on_or_off() -> None:
    from bento.settings import load_settings

    assert load_settings({}).batching == "auto"
    assert load_settings({"CEPAGE_BATCHING": " Off "}).batching == "off"
    with pytest.raises(ValueError, match="CEPAGE_BATCHING must be one of auto, on, off"):
        load_settings({"CEPAGE_BATCHING": "yes"})


def test_a_request_whose_client_went_away_is_not_scored(wine_forest: Predictor) -> None:
    predictor, estimator = counting(wine_forest)
    record = typical_records(wine_forest.bundle.schema, 1)[0]
    requests = [[record] * n for n in (1, 2, 3, 4)]
    outcomes = asyncio.run(score_together(predictor, estimator, requests, cancel=(2,)))
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert [len(o) for i, o in enumerate(outcomes) if i != 2] == [1, 2, 4]
    assert estimator.calls == [1, 6]  # the 3 rows of the cancelled request were never scored


def test_a_failing_metric_never_stops_the_scoring(wine_forest: Predictor) -> None:
    predictor, estimator = counting(wine_forest)
    estimator.gate.set()
    record = typical_records(wine_forest.bundle.schema, 1)[0]

    def broken(rows: int) -> None:
        raise RuntimeError("metrics down")

    async def run() -> list[Any]:
        with ThreadPoolExecutor(1) as executor:
            batcher = Batcher(predictor, executor, max_rows=1000, observe=broken)
            answers = [await batcher.predict(predictor.inputs([record])) for _ in range(3)]
            together = await asyncio.gather(
                *(batcher.predict(predictor.inputs([record])) for _ in range(5))
            )
            return [*answers, *together]

    outcomes = asyncio.run(run())
    assert len(outcomes) == 8 and all(len(o) == 1 for o in outcomes)
