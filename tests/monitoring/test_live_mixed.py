"""Drift of categories and blanks, live: a real Prometheus with the repo's rules scraping two real
services of a mixed-data model (tests/support/mixed_data.py).

`cepage-baseline` gets rows of the training data; `cepage-service` gets the same rows with the
plan mix turned over, most regions blank and a tenth of the plans never seen in training. The
categorical PSI, the missing-value share and the unseen-category share must move there (and
only there), and the alert expressions must hold there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.monitoring.test_config import alert_rules
from tests.monitoring.test_live import Trickle, prometheus_running, query, send_load, wait_for
from tests.support.mixed_data import PAPERLESS, PLAN, REGION, TARGET, customers
from tests.support.procs import bentoml_serve, free_port, require_binary

pytestmark = pytest.mark.monitoring

ROWS = 400


def records(count: int, seed: int, shift: bool) -> list[dict[str, Any]]:
    """Training-like rows as JSON records; shifted: premium plans, blank regions, unseen plans."""
    frame = customers().sample(count, replace=True, random_state=seed).drop(columns=[TARGET])
    rng = np.random.default_rng(seed)
    if shift:
        frame[PLAN] = rng.choice(["premium", "gold"], size=count, p=[0.9, 0.1])
        frame.loc[rng.random(count) < 0.6, REGION] = np.nan
    rows = []
    for row in frame.to_dict(orient="records"):
        record = {str(k): (None if pd.isna(v) else v) for k, v in row.items()}
        if record[PAPERLESS] is not None:
            record[PAPERLESS] = record[PAPERLESS] == "yes"
        rows.append(record)
    return rows


@pytest.fixture(scope="module")
def prometheus(mixed_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_binary("prometheus")
    directory = tmp_path_factory.mktemp("prometheus-mixed")
    prom_port = free_port()
    with bentoml_serve(mixed_home) as shifted, bentoml_serve(mixed_home) as baseline:
        targets = {
            "service": shifted.removeprefix("http://"),
            "baseline": baseline.removeprefix("http://"),
            "prometheus": f"127.0.0.1:{prom_port}",
        }
        with prometheus_running(binary, directory, targets, prom_port) as url:
            # Counters must be scraped at zero before the load, so increase() sees all of it.
            wait_for(url, 'cepage_feature_missing_total{job="cepage-baseline"}')
            wait_for(url, 'cepage_unseen_category_total{job="cepage-service"}')
            time.sleep(2)
            shifted_rows = records(ROWS, seed=1, shift=True)
            baseline_rows = records(ROWS, seed=2, shift=False)
            send_load(shifted, shifted_rows, feedback_wrong=False)
            send_load(baseline, baseline_rows, feedback_wrong=False)
            with Trickle({shifted: shifted_rows, baseline: baseline_rows}):
                wait_for(url, f'cepage:predictions:increase30m{{job="cepage-baseline"}} >= {ROWS}')
                wait_for(url, f'cepage:predictions:increase30m{{job="cepage-service"}} >= {ROWS}')
                wait_for(url, 'cepage:unseen_category:ratio30m{job="cepage-service"} > 0')
                wait_for(url, 'cepage:feature_psi:30m{job="cepage-service"}')
                time.sleep(3)  # a few more scrapes and rule evaluations
                yield url


def by_feature(prometheus: str, expr: str) -> dict[str, float]:
    return {s["metric"]["feature"]: float(s["value"][1]) for s in query(prometheus, expr)}


def test_categorical_psi_moves_only_where_the_mix_moved(prometheus: str) -> None:
    baseline = by_feature(prometheus, 'cepage:feature_psi:30m{job="cepage-baseline"}')
    shifted = by_feature(prometheus, 'cepage:feature_psi:30m{job="cepage-service"}')
    assert PLAN in baseline and REGION in baseline and PAPERLESS in baseline
    assert max(baseline.values()) < 0.1, baseline
    assert shifted[PLAN] > 0.25, shifted
    # Blanks are counted apart, not binned: the regions left keep their training mix.
    assert shifted[PAPERLESS] < 0.1 and shifted[REGION] < 0.1, shifted


def test_missing_share_follows_the_blanks(prometheus: str) -> None:
    baseline = by_feature(prometheus, 'cepage:feature_missing:ratio30m{job="cepage-baseline"}')
    shifted = by_feature(prometheus, 'cepage:feature_missing:ratio30m{job="cepage-service"}')
    assert baseline[REGION] == pytest.approx(30 / 400, abs=0.05)
    assert shifted[REGION] == pytest.approx(0.6 + 0.4 * 30 / 400, abs=0.08)
    assert shifted[PLAN] == 0.0  # never left blank


def test_unseen_categories_are_a_share_of_records(prometheus: str) -> None:
    shifted = by_feature(prometheus, 'cepage:unseen_category:ratio30m{job="cepage-service"}')
    baseline = by_feature(prometheus, 'cepage:unseen_category:ratio30m{job="cepage-baseline"}')
    assert shifted[PLAN] == pytest.approx(0.1, abs=0.05)
    assert baseline[PLAN] == 0.0


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        ("CepageFeatureMissingValues", {("cepage-service", REGION)}),
        ("CepageFeatureUnseenCategories", {("cepage-service", PLAN)}),
        ("CepageFeatureDrift", {("cepage-service", PLAN)}),
    ],
)
def test_alert_expressions_hold_only_for_the_shifted_service(
    prometheus: str, alert: str, expected: set[tuple[str, str]]
) -> None:
    expr = alert_rules()[alert]["expr"]
    firing = {(s["metric"]["job"], s["metric"]["feature"]) for s in query(prometheus, expr)}
    assert firing == expected
