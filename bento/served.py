"""The model a worker serves, with its metric series, swapped as a whole on reload."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from bento.batching import Batcher
from bento.drift import ReferenceBins
from bento.explain import Explainer, explainer_for
from bento.metrics import ServiceMetrics
from bento.predictor import Inputs, ModelBundle, Predictor, RowPrediction


@dataclass(frozen=True)
class Served:
    """One model with everything a request needs."""

    predictor: Predictor
    reference: ReferenceBins
    bin_counters: list[list[Any]]  # [feature][bin] -> labelled counter, resolved once
    missing_counters: list[Any]  # [feature]
    unseen_counters: dict[int, Any]  # category feature index -> counter
    batcher: Batcher | None = None  # None: each request scored alone, on the event loop

    async def score(self, inputs: Inputs) -> list[RowPrediction]:
        """The rows' predictions: batched with other requests' when the model is batched.

        Raises:
            UnscorableError: rows the model cannot compute with (their indices in ``inputs``).
        """
        if self.batcher is None:
            return self.predictor.predict_inputs(inputs)
        return await self.batcher.predict(inputs)

    @cached_property
    def explainer(self) -> Explainer:
        """Made on the first request that asks for explanations, so a service never asked pays
        nothing (a forest's node tables take a few milliseconds to lay out).

        Raises:
            NotExplainableError: the model is of a kind that cannot be explained.
        """
        predictor = self.predictor
        return explainer_for(predictor.bundle.estimator, predictor.features)

    def count_bins(self, inputs: Inputs) -> None:
        """Count each input value in its training-reference bin, and the blanks and unseen
        categories (for drift)."""
        counts = self.reference.counts(inputs)
        for counters, bins in zip(self.bin_counters, counts.bins, strict=True):
            for index in bins.nonzero()[0]:
                counters[index].inc(int(bins[index]))
        for j, blanks in enumerate(counts.blanks):
            if blanks:
                self.missing_counters[j].inc(blanks)
        for j, counter in self.unseen_counters.items():
            if counts.unseen[j]:
                counter.inc(counts.unseen[j])


def prepare(
    bundle: ModelBundle,
    metrics: ServiceMetrics,
    batcher: Callable[[Predictor], Batcher | None] | None = None,
) -> Served:
    """Wrap a bundle and create its series at zero; ``batcher`` gives the model's batcher, or
    None to score each request alone.

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
    missing = []
    for feature, share in zip(reference.features, reference.missing_shares, strict=True):
        metrics.reference_missing.labels(version, feature).set(share)
        missing.append(metrics.missing.labels(version, feature))
    categorical = set(reference.categorical)
    unseen = {
        j: metrics.unseen.labels(version, feature)
        for j, feature in enumerate(reference.features)
        if feature in categorical
    }
    batched = batcher(predictor) if batcher is not None else None
    return Served(predictor, reference, counters, missing, unseen, batched)


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
