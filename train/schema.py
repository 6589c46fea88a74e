"""The feature schema: the contract between training, the service and the UI.

It travels inside the MLflow model (``MLmodel`` metadata) and is logged as a run artifact. The
service exposes it on ``/metadata`` and the UI builds its form from it, so nothing downstream of
training knows the feature names. Reference histograms let monitoring measure drift later.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from train.data import Dataset

SCHEMA_VERSION = 1
REFERENCE_BINS = 10


def build_feature_schema(dataset: Dataset) -> dict[str, Any]:
    """Describe every feature (dtype, min, max, median, reference bins) and the class labels.

    Statistics come from the training data as given; the UI uses min/max as input bounds and the
    median as the default, the service flags values outside [min, max].
    """
    features = []
    for name in dataset.features.columns:
        column = dataset.features[name].to_numpy(dtype="float64")
        integral = bool(np.all(np.equal(np.mod(column, 1), 0)))
        features.append(
            {
                "name": name,
                "dtype": "integer" if integral else "number",
                "min": float(column.min()),
                "max": float(column.max()),
                "median": float(np.median(column)),
                "reference": _reference(column),
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "target": dataset.target_name,
        "classes": dataset.classes,
        "features": features,
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
