"""The scikit-learn pipelines cepage can train: scaling + a linear model or a tree ensemble.

The default is ``linear``: on the wine data it matches the forest's held-out macro-F1 and answers a
single row ~35x faster (measured by ``python -m bench.models``; figures in docs/performance.md).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

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


def build_pipeline(model: str, params: dict[str, Any], seed: int) -> Pipeline:
    """A Pipeline ``scale -> model`` with ``params`` applied to the estimator."""
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
    return Pipeline([("scale", StandardScaler()), ("model", estimator)])
