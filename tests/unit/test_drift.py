"""Reference bins: training-like inputs land like the training rows, shifted ones do not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bento.drift import ReferenceBins
from bento.predictor import Inputs, ModelBundle, ModelInfo, Predictor
from tests.support.mixed_data import PLAN, REGION, TARGET, customers
from train.data import load_dataset, validate
from train.schema import build_feature_schema


def as_inputs(matrix: np.ndarray) -> Inputs:
    return Inputs(matrix, matrix, {})


def test_training_rows_reproduce_the_reference_shares() -> None:
    dataset = load_dataset(None, None)
    bins = ReferenceBins(build_feature_schema(dataset))
    counts = bins.counts(as_inputs(dataset.features.to_numpy())).bins
    for feature_counts, fractions in zip(counts, bins.fractions, strict=True):
        assert feature_counts.sum() == len(dataset.features)
        assert np.allclose(feature_counts / feature_counts.sum(), fractions)


def test_values_outside_the_training_range_fall_in_the_outer_bins() -> None:
    dataset = load_dataset(None, None)
    bins = ReferenceBins(build_feature_schema(dataset))
    low = dataset.features.min().to_numpy() - 100
    high = dataset.features.max().to_numpy() + 100
    counts = bins.counts(as_inputs(np.vstack([low, high, high]))).bins
    for feature_counts in counts:
        assert feature_counts[0] == 1
        assert feature_counts[-1] == 2


class _NoModel:
    classes_ = np.array(["left", "stayed"])


def test_mixed_training_rows_reproduce_categories_booleans_and_blanks() -> None:
    dataset = validate(customers(), TARGET, name="c", source="c")
    schema = build_feature_schema(dataset)
    info = ModelInfo(name="m", version="1", bento_model="m:x", run_id="r", created_at="t")
    predictor = Predictor(ModelBundle(estimator=_NoModel(), schema=schema, info=info))
    records = [
        {str(k): (None if pd.isna(v) else v) for k, v in row.items()}  # NaN -> null, as in JSON
        for row in dataset.features.to_dict(orient="records")
    ]
    for row in records:
        for name, kind in dataset.kinds.items():
            if kind == "boolean" and row[name] is not None:
                row[name] = bool(row[name])
    bins = ReferenceBins(schema)
    counts = bins.counts(predictor.inputs(records))
    for name, feature_counts, fractions in zip(
        bins.features, counts.bins, bins.fractions, strict=True
    ):
        assert np.allclose(feature_counts / feature_counts.sum(), fractions), name
    shares = dict(zip(bins.features, bins.missing_shares, strict=True))
    blanks = dict(zip(bins.features, counts.blanks, strict=True))
    for name in bins.features:
        assert blanks[name] == round(shares[name] * len(records)), name
    assert blanks[REGION] == 30
    assert sum(counts.unseen) == 0


def test_unseen_and_blank_categories_are_counted_apart() -> None:
    dataset = validate(customers(), TARGET, name="c", source="c")
    schema = build_feature_schema(dataset)
    info = ModelInfo(name="m", version="1", bento_model="m:x", run_id="r", created_at="t")
    predictor = Predictor(ModelBundle(estimator=_NoModel(), schema=schema, info=info))
    base = {f["name"]: None for f in schema["features"]}
    records = [{**base, PLAN: "gold"}, {**base, PLAN: "basic", REGION: "mars"}]
    bins = ReferenceBins(schema)
    counts = bins.counts(predictor.inputs(records))
    by_name = dict(zip(bins.features, counts.unseen, strict=True))
    assert by_name[PLAN] == 1
    assert by_name[REGION] == 1
    plan_bins = dict(zip(bins.features, counts.bins, strict=True))[PLAN]
    assert plan_bins.sum() == 1  # only "basic" is binned
    assert dict(zip(bins.features, counts.blanks, strict=True))[REGION] == 1
