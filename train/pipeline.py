"""The scikit-learn pipelines cepage can train: preparation + a linear model or a tree ensemble.

Preparation follows the feature schema. Numbers never missing in training (the wine data) get
``scale -> model``, which the service feeds a plain float array (its fastest path). Any other
schema gets a ``ColumnTransformer`` inside the logged model, so the service scores raw records:
blanks imputed (median for numbers, most frequent for booleans, a category of their own for
categories) with an indicator column where training had blanks, numbers scaled, categories
one-hot encoded with rare and unseen values grouped as "infrequent".

The default is ``linear``: on the wine data it matches the forest's held-out macro-F1 and answers a
single row ~35x faster (measured by ``python -m bench.models``; figures in docs/performance.md).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sklearn.base import ClassifierMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from contracts.features import BOOLEAN, CATEGORY, NUMERIC_KINDS, kind, takes_array
from train.data import MIN_CATEGORY_ROWS
from train.errors import StepError

DEFAULT_MODEL = "linear"
# The estimator's seed when none is given (the split has its own: training.SPLIT_SEED).
DEFAULT_SEED = 42


def _linear(seed: int) -> ClassifierMixin:
    return LogisticRegression(max_iter=2000, random_state=seed)


def _forest(seed: int) -> ClassifierMixin:
    return RandomForestClassifier(n_estimators=200, n_jobs=1, random_state=seed)


MODELS: dict[str, Callable[[int], ClassifierMixin]] = {"linear": _linear, "forest": _forest}


class ParamError(StepError, ValueError):
    """A --param value or model name is not valid; the message says which."""


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """Turn ``["C=0.5", "penalty='l2'"]`` into ``{"C": 0.5, "penalty": "l2"}``.

    Values are Python literals when they parse as one (numbers, None, True), strings otherwise.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"--param {pair!r} must look like KEY=VALUE.")
        try:
            params[key] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            params[key] = raw.strip()
    return params


# What a blank category becomes before encoding: a value of its own, so "unknown" can carry signal.
BLANK_CATEGORY = "(blank)"


def build_pipeline(
    model: str,
    params: dict[str, Any],
    seed: int,
    features: Sequence[Mapping[str, Any]] | None = None,
) -> Pipeline:
    """``prepare -> model`` with ``params`` applied to the estimator.

    ``features`` is the feature schema's list (train/schema.py); without it (or when every
    feature is a number never missing) preparation is a ``StandardScaler``.
    """
    if model not in MODELS:
        raise ParamError(f"Unknown model '{model}'; choose one of: {', '.join(MODELS)}.")
    estimator = MODELS[model](seed)
    valid = estimator.get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ParamError(
            f"Model '{model}' has no parameter {', '.join(unknown)}; "
            f"valid ones include: {', '.join(sorted(valid)[:12])}."
        )
    estimator.set_params(**params)
    if features is None or takes_array(features):
        return Pipeline([("scale", StandardScaler()), ("model", estimator)])
    return Pipeline([("prepare", preparation(features)), ("model", estimator)])


def preparation(features: Sequence[Mapping[str, Any]]) -> ColumnTransformer:
    """Impute, scale and encode each feature by its kind, by column name."""
    by_kind: dict[str, list[str]] = {}
    for feature in features:
        group = "numbers" if kind(feature) in NUMERIC_KINDS else kind(feature)
        by_kind.setdefault(group, []).append(feature["name"])
    steps: dict[str, TransformerMixin] = {
        "numbers": make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
        ),
        BOOLEAN: SimpleImputer(strategy="most_frequent", add_indicator=True),
        CATEGORY: make_pipeline(
            SimpleImputer(strategy="constant", fill_value=BLANK_CATEGORY),
            OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                min_frequency=MIN_CATEGORY_ROWS,
                sparse_output=False,
            ),
        ),
    }
    return ColumnTransformer(
        [(group, steps[group], names) for group, names in by_kind.items()],
        remainder="drop",
    )
