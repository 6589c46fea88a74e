"""Per-feature histograms of live inputs over the training reference bins, and blanks.

The service only counts: each record's value falls in one of the feature's reference bins, from
the feature schema: decile edges of the training data for a number, one bin per training
category for a category (its index in ``categories``), false and true for a boolean. Blanks are
counted apart (the schema carries their training share) and so are category values never seen
in training. Prometheus sums the counters over all workers and replicas and computes the
population stability index (PSI) against the reference shares in a recording rule
(``monitoring/prometheus/rules/cepage.rules.yml``), so drift is correct however many processes
serve, and the window is chosen in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bento.predictor import BLANK, UNSEEN, Inputs
from contracts.features import BOOLEAN, CATEGORY, kind, nullable


@dataclass(frozen=True)
class Counts:
    """What one batch of records adds to the drift counters, per feature (schema order)."""

    bins: list[np.ndarray]
    blanks: list[int]
    unseen: list[int]


class ReferenceBins:
    """Bins every feature's values by the schema's ``reference``."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.features: list[str] = []
        self.fractions: list[list[float]] = []
        self.missing_shares: list[float] = []
        self._kinds: list[str] = []
        self._nullable: list[bool] = []
        self._inner: list[np.ndarray] = []
        for feature in schema["features"]:
            reference = feature["reference"]
            self.features.append(feature["name"])
            self.fractions.append([float(f) for f in reference["fractions"]])
            self.missing_shares.append(float(feature.get("missing_share", 0.0)))
            self._kinds.append(kind(feature))
            self._nullable.append(nullable(feature))
            # Values below the first or above the last edge fall in the outer bins, like the
            # training rows that defined them.
            edges = np.asarray(reference.get("edges", [0.0, 1.0]), dtype="float64")
            self._inner.append(edges[1:-1])

    @property
    def categorical(self) -> list[str]:
        """The category features (those that can see unseen values)."""
        return [f for f, k in zip(self.features, self._kinds, strict=True) if k == CATEGORY]

    def counts(self, inputs: Inputs) -> Counts:
        """How many records fall in each bin, are blank, or hold an unseen category."""
        bins, blanks, unseen = [], [], []
        for j, fractions in enumerate(self.fractions):
            size = len(fractions)
            if self._kinds[j] == CATEGORY:
                codes = inputs.codes[j]
                bins.append(np.bincount(codes[codes >= 0], minlength=size))
                blanks.append(int(np.count_nonzero(codes == BLANK)))
                unseen.append(int(np.count_nonzero(codes == UNSEEN)))
                continue
            values = inputs.numbers[:, j]
            if self._nullable[j]:
                present = ~np.isnan(values)
                blanks.append(len(values) - int(present.sum()))
                values = values[present]
            else:
                blanks.append(0)
            unseen.append(0)
            if self._kinds[j] == BOOLEAN:
                bins.append(np.bincount(values.astype(np.int64), minlength=size))
            else:
                bins.append(
                    np.bincount(
                        np.searchsorted(self._inner[j], values, side="right"), minlength=size
                    )
                )
        return Counts(bins, blanks, unseen)
