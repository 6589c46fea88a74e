"""Adaptive batching with the real CLI and a real `bentoml serve` (bento/batching.py).

`cepage package` measures each champion's cost on 1 row and on 32 and stores it with the model;
the service batches the forest (its cost is per tree, not per row) and leaves the linear model
unbatched. Concurrent requests to the forest are merged into shared model calls, and each still
gets its own answer, the same as when it is sent alone.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from bento.batching import BatchProfile, pays
from contracts.names import METADATA_BATCH_PROFILE, MODEL_NAME
from tests.support.mixed_data import api_record
from tests.support.procs import bentoml_serve

pytestmark = pytest.mark.integration


def stored_profile(home: Path) -> BatchProfile | None:
    """The batch profile `cepage package` stored with the home's champion in the BentoML store."""
    [model_yaml] = (home / "bentoml" / "models" / MODEL_NAME).glob("*/model.yaml")
    metadata = yaml.safe_load(model_yaml.read_text())["metadata"]
    return BatchProfile.from_json(metadata.get(METADATA_BATCH_PROFILE))


def batch_rows(url: str) -> tuple[float, float]:
    """(model calls, rows) of the `cepage_prediction_batch_rows` histogram (0, 0: none)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    found = {
        name: float(value)
        for name, value in re.findall(
            r"^cepage_prediction_batch_rows_(count|sum) (\S+)$", text, re.M
        )
    }
    return found.get("count", 0.0), found.get("sum", 0.0)


def test_packaging_measures_the_forest_worth_batching_and_the_linear_model_not(
    forest_home: Path, trained_home: Path
) -> None:
    forest, linear = stored_profile(forest_home), stored_profile(trained_home)
    assert forest is not None and linear is not None
    assert pays(forest), forest
    assert not pays(linear), linear


def predict(url: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = requests.post(f"{url}/predict", json={"records": records}, timeout=30)
    assert response.status_code == 200, response.text
    answers: list[dict[str, Any]] = response.json()["predictions"]
    return [{"label": a["label"], "probabilities": a["probabilities"]} for a in answers]


def test_concurrent_requests_to_a_forest_share_model_calls_and_keep_their_answers(
    forest_url: str,
) -> None:
    records = [api_record(i) for i in range(64)]
    start_calls, start_rows = batch_rows(forest_url)  # the server is shared with other tests
    alone = [predict(forest_url, [r])[0] for r in records]  # one at a time: batches of 1
    calls_before, rows_before = batch_rows(forest_url)
    assert calls_before - start_calls == rows_before - start_rows == len(records)
    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(lambda r: predict(forest_url, [r])[0], records * 4))
    assert together == alone * 4  # each its own answer, whatever it was batched with
    calls, rows = batch_rows(forest_url)
    assert rows - rows_before == len(records) * 4
    # Merged: fewer model calls than requests (32 clients at once on one worker).
    assert calls - calls_before < len(records) * 4 * 0.8, (calls - calls_before, rows - rows_before)


def test_a_linear_model_is_scored_unbatched(api_url: str, median_record: dict[str, Any]) -> None:
    with ThreadPoolExecutor(16) as pool:
        for answer in pool.map(lambda _: predict(api_url, [median_record]), range(32)):
            assert answer
    assert batch_rows(api_url) == (0.0, 0.0)


def test_a_full_batching_queue_answers_503_with_retry_after_at_once(forest_home: Path) -> None:
    # CEPAGE_MAX_RECORDS=1: batches of 1 row, so the queue holds QUEUE_BATCHES rows; 48 clients
    # at once overflow it on a forest whose every call walks 200 trees.
    with bentoml_serve(forest_home, extra_env={"CEPAGE_MAX_RECORDS": "1"}) as url:

        def post(i: int) -> requests.Response:
            return requests.post(f"{url}/predict", json={"records": [api_record(i)]}, timeout=30)

        with ThreadPoolExecutor(48) as pool:
            answers = list(pool.map(post, range(48 * 4)))
        busy = [a for a in answers if a.status_code == 503]
        assert {a.status_code for a in answers} == {200, 503}, {a.status_code for a in answers}
        assert busy[0].headers["Retry-After"] == "1"
        assert "busy" in busy[0].json()["error"], busy[0].text
        assert all(len(a.json()["predictions"]) == 1 for a in answers if a.status_code == 200)
        # Refused, not queued: a 503 costs no model call.
        assert batch_rows(url)[1] == len(answers) - len(busy)
