"""A raw customer export as a user would bring it: every feature kind, blanks, punctuation in
column names, a rare category and a text label, generated with a fixed seed.

It is also shipped as ``examples/customers.csv`` (the README trains on it); a unit test checks
that the file is what this module generates (regenerate it with :func:`write_customers`).

The label depends on the features (so a model learns something the gate can measure), with noise
(so no feature gives it away). Shared by the integration, UI and monitoring tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stack.processes import ROOT

CUSTOMERS_CSV = ROOT / "examples" / "customers.csv"

TARGET = "churned?"
CHARGES = "Monthly charges ($)"
CALLS = "support calls"
PAPERLESS = "paperless billing"
PLAN = "plan type"
REGION = "region"
TENURE = "tenure (months)"
RARE_PLAN = "legacy"
PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")


def customers(rows: int = 400, seed: int = 7) -> pd.DataFrame:
    """The data as a DataFrame with text columns as text and blanks as NaN."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(PLANS, size=rows, p=[0.5, 0.3, 0.2]).astype(object)
    plan[:2] = RARE_PLAN  # a category with too few rows to be learned
    charges = np.round(rng.normal(60, 20, rows).clip(10, 150), 2)
    calls = rng.poisson(2, rows)
    tenure = rng.integers(1, 72, rows)
    paperless = rng.choice(["yes", "no"], size=rows).astype(object)
    region = rng.choice(REGIONS, size=rows).astype(object)
    score = (
        0.04 * (charges - 60)
        + 0.6 * (calls - 2)
        - 0.05 * (tenure - 36)
        + np.where(plan == "basic", 0.8, 0.0)
        + np.where(paperless == "yes", 0.5, -0.5)
        + rng.normal(0, 0.8, rows)
    )
    label = np.where(score > 0.3, "left", "stayed")
    frame = pd.DataFrame(
        {
            CHARGES: charges,
            CALLS: calls,
            PAPERLESS: paperless,
            PLAN: plan,
            REGION: region,
            TENURE: tenure.astype("float64"),
            TARGET: label,
        }
    )
    # Blanks, as an export leaves them: some charges, some yes/no and some regions unknown.
    frame.loc[rng.choice(rows, 25, replace=False), CHARGES] = np.nan
    frame.loc[rng.choice(rows, 20, replace=False), PAPERLESS] = np.nan
    frame.loc[rng.choice(rows, 30, replace=False), REGION] = np.nan
    return frame


def write_customers(path: Path, rows: int = 400, seed: int = 7) -> Path:
    """Write :func:`customers` as CSV (blanks as empty cells) and return ``path``."""
    customers(rows, seed).to_csv(path, index=False)
    return path


def api_record(i: int) -> dict[str, object]:
    """The ``i``-th of a varied run of records as a client sends them to ``/predict``."""
    return {
        CHARGES: 20.0 + 3 * i,
        CALLS: i % 7,
        PAPERLESS: i % 2 == 0,
        PLAN: PLANS[i % len(PLANS)],
        REGION: None if i % 5 == 0 else REGIONS[i % len(REGIONS)],
        TENURE: float(1 + i % 60),
    }


def linear_probabilities(data: Path, records: list[dict[str, object]]) -> list[dict[str, float]]:
    """Each record's probabilities from a linear model trained on ``data`` (the customers CSV) as
    `cepage train` trains it and scored as the service scores it."""
    from bento.predictor import ModelBundle, ModelInfo, Predictor, strip_feature_names
    from train.data import load_dataset
    from train.pipeline import build_pipeline
    from train.schema import build_feature_schema

    dataset = load_dataset(data, TARGET)
    schema = build_feature_schema(dataset)
    fitted = build_pipeline("linear", {}, 42, schema["features"]).fit(
        dataset.features, dataset.target
    )
    info = ModelInfo(name="m", version="1", bento_model="m:1", run_id="r", created_at="t")
    predictor = Predictor(ModelBundle(strip_feature_names(fitted), schema, info))
    return [row.probabilities for row in predictor.predict(records)]
