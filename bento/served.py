"""The model a worker serves, with its metric series, swapped as a whole on reload."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

from bento.drift import ReferenceBins
from bento.metrics import ServiceMetrics
from bento.predictor import ModelBundle, Predictor


@dataclass(frozen=True)
class Served:
    """One model with everything a request needs."""

    predictor: Predictor
    reference: ReferenceBins
    bin_counters: list[list[Any]]  # [feature][bin] -> labelled counter, resolved once

    def count_bins(self, matrix: Any) -> None:
        """Count each input value in its training-reference bin (for drift)."""
        for counters, counts in zip(self.bin_counters, self.reference.counts(matrix), strict=True):
            for index in counts.nonzero()[0]:
                counters[index].inc(int(counts[index]))


def prepare(bundle: ModelBundle, metrics: ServiceMetrics) -> Served:
    """Wrap a bundle and create its series at zero.

    A counter that first appears with a non-zero value loses those increments to rate() and
    increase(); and the drift bins must exist empty for PSI to see them.
    """
    reference = ReferenceBins(bundle.schema)
    predictor = Predictor(bundle)
    version = bundle.info.version
    for label in predictor.classes:
        metrics.predictions.labels(version, label)
    for outcome in ("correct", "incorrect"):
        metrics.feedback.labels(version, outcome)
    for feature in predictor.features:
        metrics.out_of_range.labels(feature)
    metrics.confidence.labels(version)
    counters = []
    for feature, fractions in zip(reference.features, reference.fractions, strict=True):
        row = []
        for index, fraction in enumerate(fractions):
            metrics.reference_ratio.labels(version, feature, str(index)).set(fraction)
            row.append(metrics.feature_bins.labels(version, feature, str(index)))
        counters.append(row)
    return Served(predictor, reference, counters)


def freeze_heap() -> None:
    """Move everything loaded so far out of the garbage collector's reach.

    With bentoml, scikit-learn and scipy imported a worker holds ~300k objects, and every full
    collection paused it for 150-250 ms: that was the p99 (docs/performance.md).
    """
    gc.collect()
    gc.freeze()


def refreeze_heap() -> None:
    """After a model swap: let the old model go, once, then freeze the new heap."""
    gc.unfreeze()
    freeze_heap()
