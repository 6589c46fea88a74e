"""bento/explain.py on real fitted pipelines: the mixed customer data (text categories, a rare
category, blanks, booleans) and the wine data (the plain-array path), linear and forest.

Exactness is checked against the model's own figures (``decision_function``,
``predict_proba``), the mapping back to features against an oracle built from the pipeline's
verbose column names, and the forest's path decomposition against TreeSHAP (when shap is there).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from bento.explain import LOGIT, PROBABILITY, NotExplainableError, explainer_for
from bento.predictor import ModelBundle, ModelInfo, Predictor, strip_feature_names
from bento.problems import not_explainable, problems_error
from tests.support.mixed_data import (
    CALLS,
    CHARGES,
    PAPERLESS,
    PLAN,
    REGION,
    TARGET,
    TENURE,
    customers,
)
from train.data import load_dataset
from train.pipeline import build_pipeline
from train.schema import build_feature_schema

# Additivity is exact up to floating-point summation over a few hundred terms.
EXACT = 1e-9


@dataclass(frozen=True)
class Fitted:
    """A pipeline as the service holds it, its predictor and checked inputs of some records."""

    pipeline: Any
    predictor: Predictor
    records: list[dict[str, Any]]

    @property
    def model_input(self) -> Any:
        return self.predictor.inputs(self.records).model_input

    def predicted(self) -> list[int]:
        return [int(k) for k in self.pipeline.predict_proba(self.model_input).argmax(axis=1)]


def _fit(data: Path | None, target: str | None, model: str, extra: list[dict[str, Any]]) -> Fitted:
    dataset = load_dataset(data, target)
    schema = build_feature_schema(dataset)
    pipeline = build_pipeline(model, {}, 42, schema["features"]).fit(
        dataset.features, dataset.target
    )
    pipeline = strip_feature_names(pipeline)  # as bento/loader.py serves it
    info = ModelInfo(name="m", version="1", bento_model="m:1", run_id="r", created_at="t")
    predictor = Predictor(ModelBundle(estimator=pipeline, schema=schema, info=info))
    rows = dataset.features.head(60).astype(object)
    records: list[dict[str, Any]] = [
        {str(k): None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
        for row in rows.to_dict("records")
    ]
    return Fitted(pipeline, predictor, records + extra)


@pytest.fixture(scope="module")
def customers_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("explain") / "customers.csv"
    customers().to_csv(path, index=False)
    return path


# Beyond the training rows: an unseen region, the rare plan, and every nullable feature blank.
ODD_RECORDS: list[dict[str, Any]] = [
    {CHARGES: 70.0, CALLS: 9, PAPERLESS: True, PLAN: "legacy", REGION: "mars", TENURE: 3.0},
    {CHARGES: None, CALLS: 0, PAPERLESS: None, PLAN: "basic", REGION: None, TENURE: 60.0},
]


def _fit_data(data: str, model: str, customers_csv: Path) -> Fitted:
    if data == "mixed":
        return _fit(customers_csv, TARGET, model, ODD_RECORDS)
    return _fit(None, None, model, [])


def _model_score(fitted: Fitted, classes: list[int]) -> np.ndarray:
    """The model's own score of each row's class: a linear model's logit, a forest's probability
    (for two classes, the log-odds of the class: the decision function, negated for the first)."""
    model = fitted.pipeline[-1]
    prepared = fitted.pipeline[:-1].transform(fitted.model_input)
    rows = np.arange(len(classes))
    if hasattr(model, "coef_"):
        decision = model.decision_function(prepared)
        if decision.ndim == 1:
            return np.where(np.array(classes) == 1, decision, -decision)
        return decision[rows, classes]
    return model.predict_proba(prepared)[rows, classes]


@pytest.mark.parametrize("model", ["linear", "forest"])
@pytest.mark.parametrize("data", ["mixed", "wine"])
def test_base_plus_contributions_is_the_models_score(
    data: str, model: str, customers_csv: Path
) -> None:
    fitted = _fit_data(data, model, customers_csv)
    classes = fitted.predicted()
    explanations = explainer_for(fitted.pipeline, fitted.predictor.features).explain(
        fitted.model_input, classes
    )
    expected = _model_score(fitted, classes)
    assert len(explanations) == len(fitted.records)
    for explanation, score, k in zip(explanations, expected, classes, strict=True):
        assert explanation.label == fitted.predictor.classes[k]
        assert list(explanation.contributions) == fitted.predictor.features
        assert explanation.score == pytest.approx(score, abs=EXACT)
        total = explanation.base + sum(explanation.contributions.values())
        assert total == pytest.approx(score, abs=EXACT)
        kind = LOGIT if hasattr(fitted.pipeline[-1], "coef_") else PROBABILITY
        assert explanation.score_kind == kind


def _oracle_feature(column: str, features: list[str]) -> str:
    """The feature a prepared column comes from, read off the ColumnTransformer's own verbose
    name (``group__feature``, ``group__missingindicator_feature``, ``group__feature_value``)."""
    rest = column.split("__", 1)[1].removeprefix("missingindicator_")
    [feature] = [f for f in features if rest == f or rest.startswith(f"{f}_")]
    return feature


def test_linear_contributions_are_coefficient_times_value_summed_per_feature(
    customers_csv: Path,
) -> None:
    fitted = _fit(customers_csv, TARGET, "linear", ODD_RECORDS)
    features = fitted.predictor.features
    prepare, model = fitted.pipeline[:-1], fitted.pipeline[-1]
    columns = [_oracle_feature(c, features) for c in prepare[-1].get_feature_names_out()]
    prepared = prepare.transform(fitted.model_input)
    classes = fitted.predicted()
    explanations = explainer_for(fitted.pipeline, features).explain(fitted.model_input, classes)
    for row, (explanation, k) in enumerate(zip(explanations, classes, strict=True)):
        sign = 1.0 if k == 1 else -1.0  # two classes: one coefficient row, for the second
        expected = dict.fromkeys(features, 0.0)
        for j, feature in enumerate(columns):
            expected[feature] += sign * model.coef_[0, j] * prepared[row, j]
        assert explanation.contributions == pytest.approx(expected, abs=EXACT)
        assert explanation.base == pytest.approx(sign * model.intercept_[0], abs=EXACT)


def test_changing_one_feature_moves_only_its_own_contribution(customers_csv: Path) -> None:
    fitted = _fit(customers_csv, TARGET, "linear", ODD_RECORDS)
    record = ODD_RECORDS[0]
    changed = [
        {**record, PLAN: "premium"},
        {**record, REGION: None},
        {**record, CHARGES: 20.0},
        {**record, PAPERLESS: False},
    ]
    inputs = fitted.predictor.inputs([record, *changed]).model_input
    explainer = explainer_for(fitted.pipeline, fitted.predictor.features)
    # The same class for all, so the contributions are comparable.
    first, *others = explainer.explain(inputs, [1] * (1 + len(changed)))
    for other, feature in zip(others, (PLAN, REGION, CHARGES, PAPERLESS), strict=True):
        moved = [
            f
            for f in fitted.predictor.features
            if abs(other.contributions[f] - first.contributions[f]) > EXACT
        ]
        assert moved == [feature]


def test_wine_linear_contributions_are_coefficient_times_scaled_value() -> None:
    fitted = _fit(None, None, "linear", [])
    scaler, model = fitted.pipeline[0], fitted.pipeline[-1]
    matrix = np.asarray(fitted.model_input)
    classes = fitted.predicted()
    explanations = explainer_for(fitted.pipeline, fitted.predictor.features).explain(
        matrix, classes
    )
    for row, (explanation, k) in enumerate(zip(explanations, classes, strict=True)):
        scaled = (matrix[row] - scaler.mean_) / scaler.scale_
        expected = dict(zip(fitted.predictor.features, model.coef_[k] * scaled, strict=True))
        assert explanation.contributions == pytest.approx(expected, abs=EXACT)
        assert explanation.base == pytest.approx(model.intercept_[k], abs=EXACT)


def test_forest_base_is_the_trees_mean_root_share(customers_csv: Path) -> None:
    fitted = _fit(customers_csv, TARGET, "forest", [])
    forest = fitted.pipeline[-1]
    explanation = explainer_for(fitted.pipeline, fitted.predictor.features).explain(
        fitted.model_input[:1], [0]
    )[0]
    roots = [t.tree_.value[0, 0] / t.tree_.value[0, 0].sum() for t in forest.estimators_]
    assert explanation.base == pytest.approx(float(np.mean(roots, axis=0)[0]), abs=EXACT)


def test_a_model_of_another_kind_is_refused_by_name(customers_csv: Path) -> None:
    fitted = _fit(customers_csv, TARGET, "linear", [])
    pipeline = fitted.pipeline
    boosted = type(pipeline)([*pipeline.steps[:-1], ("model", GradientBoostingClassifier())])
    with pytest.raises(NotExplainableError, match="GradientBoostingClassifier"):
        explainer_for(boosted, fitted.predictor.features)


@pytest.fixture
def shap_module() -> Iterator[Any]:
    """TreeSHAP, the reference (a dev dependency: requirements/dev.lock; never in the service)."""
    import shap

    yield shap


@pytest.mark.parametrize("data", ["mixed", "wine"])
def test_forest_path_contributions_against_treeshap(
    data: str, customers_csv: Path, shap_module: Any
) -> None:
    """Saabas vs TreeSHAP on the same forest: same base, same total, close contributions.

    The figures printed here are the ones docs/api.md quotes; the bounds are loose enough for
    another seed, tight enough to catch a wrong mapping (which moves whole contributions).
    """
    fitted = _fit_data(data, "forest", customers_csv)
    features = fitted.predictor.features
    prepare, forest = fitted.pipeline[:-1], fitted.pipeline[-1]
    prepared = np.asarray(prepare.transform(fitted.model_input), dtype="float64")
    classes = fitted.predicted()
    ours = explainer_for(fitted.pipeline, features).explain(fitted.model_input, classes)

    tree_shap = shap_module.TreeExplainer(forest)
    values = np.asarray(tree_shap.shap_values(prepared, check_additivity=True))
    sources = _sources_by_oracle(prepare, len(features), features)
    per_feature = np.zeros((len(classes), len(features)))
    for j, source in enumerate(sources):
        per_feature[:, source] += values[np.arange(len(classes)), j, classes]
    expected_value = np.atleast_1d(tree_shap.expected_value)
    diffs = []
    for row, (explanation, k) in enumerate(zip(ours, classes, strict=True)):
        assert explanation.base == pytest.approx(expected_value[k], abs=1e-6)
        mine = np.array([explanation.contributions[f] for f in features])
        diffs.append(np.abs(mine - per_feature[row]))
        # Both are additive to the same probability: the differences cancel out per row.
        assert mine.sum() == pytest.approx(per_feature[row].sum(), abs=1e-6)
    gap = np.array(diffs)
    spread = np.abs(per_feature).mean()
    print(
        f"\n{data} forest, {len(classes)} rows x {len(features)} features: |Saabas - TreeSHAP| "
        f"mean {gap.mean():.4f}, p95 {np.quantile(gap, 0.95):.4f}, max {gap.max():.4f} "
        f"(probability points; mean |TreeSHAP| {spread:.4f})"
    )
    assert gap.mean() < 0.5 * spread
    assert gap.max() < 0.15


def _sources_by_oracle(prepare: Any, width: int, features: list[str]) -> list[int]:
    last = prepare[-1]
    if hasattr(last, "transformers_"):
        return [features.index(_oracle_feature(c, features)) for c in last.get_feature_names_out()]
    return list(range(width))


class _LooksLinear:
    """coef_ and a decision function, which is not coefficient x value (e.g. a kernel model)."""

    classes_ = np.array(["a", "b"])
    coef_ = np.array([[1.0, 2.0]])
    intercept_ = np.array([0.5])
    n_features_in_ = 2

    def decision_function(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(matrix, dtype="float64").sum(axis=1) ** 2


def test_a_model_that_only_looks_linear_is_refused() -> None:
    explainer = explainer_for(_LooksLinear(), ["x", "y"])
    with pytest.raises(NotExplainableError, match="_LooksLinear"):
        explainer.explain(np.array([[1.0, 3.0]]), [1])


def test_a_model_that_cannot_explain_is_a_400_naming_explain() -> None:
    error = problems_error("PredictRequest", not_explainable("a GradientBoostingClassifier ..."))
    [detail] = error.errors()
    assert detail["loc"] == ("explain",)
    assert detail["type"] == "not_explainable"
    assert "GradientBoostingClassifier" in detail["msg"]
