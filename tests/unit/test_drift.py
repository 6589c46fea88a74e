"""Reference bins: training-like inputs land like the training rows, shifted ones do not."""

from __future__ import annotations

import numpy as np

from bento.drift import ReferenceBins
from train.data import load_dataset
from train.schema import build_feature_schema


def test_training_rows_reproduce_the_reference_shares() -> None:
    dataset = load_dataset(None, None)
    bins = ReferenceBins(build_feature_schema(dataset))
    counts = bins.counts(dataset.features.to_numpy())
    for feature_counts, fractions in zip(counts, bins.fractions, strict=True):
        assert feature_counts.sum() == len(dataset.features)
        assert np.allclose(feature_counts / feature_counts.sum(), fractions)


def test_values_outside_the_training_range_fall_in_the_outer_bins() -> None:
    dataset = load_dataset(None, None)
    bins = ReferenceBins(build_feature_schema(dataset))
    low = dataset.features.min().to_numpy() - 100
    high = dataset.features.max().to_numpy() + 100
    counts = bins.counts(np.vstack([low, high, high]))
    for feature_counts in counts:
        assert feature_counts[0] == 1
        assert feature_counts[-1] == 2
