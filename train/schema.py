"""The feature schema: the contract between training, the service and the UI.

It travels inside the MLflow model (``MLmodel`` metadata) and is logged as a run artifact. The
service exposes it on ``/metadata`` and the UI builds its form from it, so nothing downstream of
training knows the feature names. Each feature has its kind (contracts/features.py describes the
fields of each), and reference shares let monitoring measure drift later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from contracts.features import BOOLEAN, CATEGORY, kind
from train.data import Dataset
from train.kinds import convert

SCHEMA_VERSION = 2
REFERENCE_BINS = 10


def build_feature_schema(dataset: Dataset) -> dict[str, Any]:
    """Describe every feature (kind, blanks, range or values, reference shares) and the classes.

    Statistics come from the training rows that have a value: the UI uses them for its inputs
    (bounds, defaults, choices), the service flags values outside the range or never seen.
    """
    features = []
    for name in dataset.features.columns:
        column = dataset.features[name]
        which = dataset.kinds.get(name) or _numeric_kind(column)
        missing = int(column.isna().sum())
        entry: dict[str, Any] = {
            "name": name,
            "kind": which,
            "nullable": missing > 0,
            "missing_share": missing / len(column),
        }
        present = column.dropna()
        if which == CATEGORY:
            entry.update(_categories(present))
        elif which == BOOLEAN:
            true_share = float(present.mean())
            entry["true_share"] = true_share
            entry["reference"] = {"fractions": [1.0 - true_share, true_share]}
        else:
            values = present.to_numpy(dtype="float64")
            entry.update(
                min=float(values.min()),
                max=float(values.max()),
                median=float(np.median(values)),
                reference=_reference(values),
            )
        features.append(entry)
    return {
        "schema_version": SCHEMA_VERSION,
        "target": dataset.target_name,
        "classes": dataset.classes,
        "features": features,
    }


def model_frame(frame: pd.DataFrame, features: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The schema's columns of ``frame`` (e.g. held-out rows read back from CSV) in model form."""
    return pd.DataFrame(
        {f["name"]: convert(frame[f["name"]], kind(f)) for f in features}, index=frame.index
    )


def _numeric_kind(column: pd.Series) -> str:
    values = column.dropna().to_numpy(dtype="float64")
    return "integer" if bool(np.all(np.mod(values, 1) == 0)) else "number"


def _categories(present: pd.Series) -> dict[str, Any]:
    """Values most frequent first (ties by value, so the order is stable) and their shares."""
    counts = present.astype(str).value_counts()
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shares = [count / len(present) for _, count in ordered]
    return {
        "categories": [value for value, _ in ordered],
        "frequencies": shares,
        "reference": {"fractions": shares},
    }


def _reference(column: np.ndarray) -> dict[str, list[float]]:
    """Quantile bin edges and the share of training rows in each bin (for PSI drift)."""
    edges = np.unique(np.quantile(column, np.linspace(0, 1, REFERENCE_BINS + 1)))
    if len(edges) < 2:
        edges = np.array([column.min(), column.min() + 1.0])
    inner = edges[1:-1]
    counts = np.bincount(np.searchsorted(inner, column, side="right"), minlength=len(edges) - 1)
    return {
        "edges": [float(e) for e in edges],
        "fractions": [float(c) / len(column) for c in counts],
    }
