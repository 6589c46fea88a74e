"""The prediction logic with a stub estimator (no BentoML, no store)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bento.predictor import ModelBundle, ModelInfo, Predictor

SCHEMA = {
    "classes": ["a", "b"],
    "features": [
        {"name": "x", "min": 0.0, "max": 10.0, "median": 5.0},
        {"name": "y/z", "min": -1.0, "max": 1.0, "median": 0.0},
    ],
}


class StubEstimator:
    """Class 'b' when x > 5; records the arrays it is given."""

    classes_ = np.array(["a", "b"])

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        self.seen.append(matrix)
        p_b = (matrix[:, 0] > 5).astype(float) * 0.8 + 0.1
        return np.column_stack([1 - p_b, p_b])


@pytest.fixture
def predictor() -> Predictor:
    info = ModelInfo(name="m", version="3", bento_model="m:abc", run_id="r", created_at="t")
    return Predictor(ModelBundle(estimator=StubEstimator(), schema=SCHEMA, info=info))


def test_predicts_in_schema_order_whatever_the_key_order(predictor: Predictor) -> None:
    rows = predictor.predict([{"y/z": 0.5, "x": 9.0}, {"x": 1.0, "y/z": 0.0}])
    assert [r.label for r in rows] == ["b", "a"]
    assert rows[0].probabilities == pytest.approx({"a": 0.1, "b": 0.9})
    seen: Any = predictor.bundle.estimator.seen[0]
    assert seen.tolist() == [[9.0, 0.5], [1.0, 0.0]]


def test_out_of_range_features_are_flagged(predictor: Predictor) -> None:
    rows = predictor.predict([{"x": 11.0, "y/z": -2.0}, {"x": 10.0, "y/z": -1.0}])
    assert rows[0].out_of_range == ["x", "y/z"]
    assert rows[1].out_of_range == []  # the bounds themselves are in range


def test_check_names_missing_and_unknown_fields(predictor: Predictor) -> None:
    problems = predictor.check([{"x": 1.0, "y/z": 0.0}, {"x": 1.0, "w": 2.0}], limit=10)
    assert [(p.loc, p.kind) for p in problems] == [
        (("records", 1, "y/z"), "missing"),
        (("records", 1, "w"), "extra_forbidden"),
    ]


def test_check_enforces_the_record_limit(predictor: Predictor) -> None:
    problems = predictor.check([{"x": 1.0, "y/z": 0.0}] * 3, limit=2)
    assert len(problems) == 1
    assert problems[0].loc == ("records",)
    assert "at most 2" in problems[0].message


def test_records_that_overflow_the_model_are_named_not_crashed_on() -> None:
    """Found by fuzzing: finite but huge values (1e308) overflow a fitted scaler."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bento.predictor import UnscorableError

    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]), ["a", "b", "a", "b"])
    info = ModelInfo(name="m", version="1", bento_model="m:x", run_id="r", created_at="t")
    predictor = Predictor(ModelBundle(estimator=model, schema=SCHEMA, info=info))
    fine = {"x": 1.0, "y/z": 0.0}
    with pytest.raises(UnscorableError) as caught:
        predictor.predict([fine, {"x": 1.7e308, "y/z": -1.7e308}, fine, {"x": -1e308, "y/z": 0}])
    assert caught.value.rows == [1, 3]
    assert len(predictor.predict([fine, {"x": 1e200, "y/z": 0.0}])) == 2


class CountingModel:
    """Wraps a fitted model and counts its predict_proba calls."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, 0
        self.classes_ = model.classes_

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.asarray(self.model.predict_proba(matrix))


def test_a_large_batch_with_a_few_overflowing_rows_costs_few_model_calls() -> None:
    """A 1000-record batch once cost 1001 calls on the event loop to name its bad rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bento.predictor import UnscorableError

    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]), ["a", "b", "a", "b"])
    counting = CountingModel(model)
    info = ModelInfo(name="m", version="1", bento_model="m:x", run_id="r", created_at="t")
    predictor = Predictor(ModelBundle(estimator=counting, schema=SCHEMA, info=info))
    records = [{"x": 1.0, "y/z": 0.0}] * 1000
    bad = [7, 500, 999]
    for row in bad:
        records[row] = {"x": 1.7e308, "y/z": -1.7e308}
    with pytest.raises(UnscorableError) as caught:
        predictor.predict(records)
    assert caught.value.rows == bad
    # Not a pipeline to this predictor: halving, about 2 calls per level per bad row.
    assert counting.calls <= 3 * 2 * 10 + 1, counting.calls
    # The pipeline itself: its preparation names the rows in one more call, even all of them.
    direct = Predictor(ModelBundle(estimator=model, schema=SCHEMA, info=info))
    with pytest.raises(UnscorableError) as caught:
        direct.predict(records)
    assert caught.value.rows == bad
    with pytest.raises(UnscorableError) as caught:
        direct.predict([{"x": 1.7e308, "y/z": -1.7e308}] * 1000)
    assert caught.value.rows == list(range(1000))


MIXED = {
    "classes": ["a", "b"],
    "features": [
        {"name": "n", "kind": "number", "nullable": True, "min": 0.0, "max": 1.0},
        {"name": "i", "kind": "integer", "nullable": False, "min": 0.0, "max": 9.0},
        {"name": "b", "kind": "boolean", "nullable": False},
        {"name": "c", "kind": "category", "nullable": True, "categories": ["red", "blue"]},
    ],
}


class FrameEstimator:
    """Records the DataFrames it is given; 'b' when the category is blue."""

    classes_ = np.array(["a", "b"])

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def predict_proba(self, frame: Any) -> np.ndarray:
        self.seen.append(frame)
        p_b = (frame["c"] == "blue").to_numpy(dtype=float) * 0.8 + 0.1
        return np.column_stack([1 - p_b, p_b])


@pytest.fixture
def mixed() -> Predictor:
    info = ModelInfo(name="m", version="3", bento_model="m:abc", run_id="r", created_at="t")
    return Predictor(ModelBundle(estimator=FrameEstimator(), schema=MIXED, info=info))


def test_each_kind_is_type_checked_with_the_field_named(mixed: Predictor) -> None:
    problems = mixed.check(
        [
            {"n": "1", "i": 2.5, "b": 1, "c": 3},  # a fraction is fine for an integer
            {"n": True, "i": None, "b": None},
            {"n": None, "i": 2.0, "b": False, "c": None},
        ],
        limit=10,
    )
    assert [(p.loc, p.kind) for p in problems] == [
        (("records", 0, "n"), "float_type"),
        (("records", 0, "b"), "bool_type"),
        (("records", 0, "c"), "string_type"),
        (("records", 1, "n"), "float_type"),
        (("records", 1, "i"), "missing_value"),
        (("records", 1, "b"), "missing_value"),
    ]
    assert "['red', 'blue']" in problems[2].message


def test_a_mixed_model_gets_a_frame_and_blanks_unseen_are_flagged(mixed: Predictor) -> None:
    assert not mixed.takes_array
    rows = mixed.predict(
        [{"i": 3, "b": True, "c": "blue"}, {"n": 2.0, "i": 1, "b": False, "c": "x"}]
    )
    assert [r.label for r in rows] == ["b", "a"]
    assert rows[0].out_of_range == []
    assert rows[1].out_of_range == ["n", "c"]  # above the range; a category never seen
    frame = mixed.bundle.estimator.seen[0]
    assert list(frame.columns) == ["n", "i", "b", "c"]
    assert np.isnan(frame["n"][0])
    assert frame["b"].tolist() == [1.0, 0.0]
    assert frame["c"].tolist() == ["blue", "x"]
