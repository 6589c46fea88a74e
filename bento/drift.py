"""Per-feature histograms of live inputs over the training reference bins.

The service only counts: each record's value falls in one of the feature's reference bins (decile
edges from the training data, carried in the feature schema). Prometheus sums the counters over all
workers and replicas and computes the population stability index (PSI) against the reference
shares in a recording rule (``monitoring/prometheus/rules/cepage.rules.yml``), so drift is
correct however many processes serve, and the window is chosen in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class ReferenceBins:
    """Bins every feature's values with the edges from the schema's ``reference``."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.features: list[str] = []
        self.fractions: list[list[float]] = []
        self._inner: list[np.ndarray] = []
        for feature in schema["features"]:
            reference = feature["reference"]
            edges = np.asarray(reference["edges"], dtype="float64")
            self.features.append(feature["name"])
            self.fractions.append([float(f) for f in reference["fractions"]])
            # Values below the first or above the last edge fall in the outer bins, like the
            # training rows that defined them.
            self._inner.append(edges[1:-1])

    def counts(self, matrix: np.ndarray) -> list[np.ndarray]:
        """For each feature (schema order), how many rows of ``matrix`` fall in each bin."""
        return [
            np.bincount(
                np.searchsorted(inner, matrix[:, j], side="right"), minlength=len(fractions)
            )
            for j, (inner, fractions) in enumerate(zip(self._inner, self.fractions, strict=True))
        ]
