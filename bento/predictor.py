"""The prediction logic, free of BentoML so that unit tests can hand it any estimator.

A :class:`ModelBundle` is what the service loads from the BentoML store: the native scikit-learn
estimator (``predict_proba`` available), the feature schema that travelled with it from training,
and who it is (versions, run id, metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """Identity of the served model."""

    name: str
    version: str
    bento_model: str
    run_id: str
    created_at: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelBundle:
    """Everything needed to answer requests with one model."""

    estimator: Any
    schema: dict[str, Any]
    info: ModelInfo


@dataclass(frozen=True)
class InputProblem:
    """One problem with a request: where (``loc``), what kind, and a sentence."""

    loc: tuple[str | int, ...]
    kind: str
    message: str


@dataclass(frozen=True)
class RowPrediction:
    """The model's answer for one record."""

    label: str
    probabilities: dict[str, float]
    out_of_range: list[str]


class Predictor:
    """Validates records against the schema and scores them in schema order."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self.features: list[str] = [f["name"] for f in bundle.schema["features"]]
        self._feature_set = set(self.features)
        self._low = np.array([f["min"] for f in bundle.schema["features"]], dtype="float64")
        self._high = np.array([f["max"] for f in bundle.schema["features"]], dtype="float64")
        self.classes: list[str] = [str(c) for c in bundle.estimator.classes_]

    def check(self, records: Sequence[Mapping[str, float]], limit: int) -> list[InputProblem]:
        """Every missing or unknown feature name, and a too-long request; [] when valid."""
        if len(records) > limit:
            return [
                InputProblem(
                    ("records",),
                    "too_long",
                    f"has {len(records)} records; at most {limit} are accepted per request",
                )
            ]
        problems: list[InputProblem] = []
        for index, record in enumerate(records):
            if record.keys() == self._feature_set:
                continue
            for name in self.features:
                if name not in record:
                    problems.append(
                        InputProblem(("records", index, name), "missing", "Field required")
                    )
            for name in record:
                if name not in self._feature_set:
                    problems.append(
                        InputProblem(
                            ("records", index, name),
                            "extra_forbidden",
                            "Unknown feature (see GET /metadata for the feature names)",
                        )
                    )
        return problems

    def matrix(self, records: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Already-checked records as a float array, columns in schema order."""
        return np.array([[r[name] for name in self.features] for r in records], dtype="float64")

    def predict(self, records: Sequence[Mapping[str, float]]) -> list[RowPrediction]:
        """Score already-checked records."""
        return self.predict_matrix(self.matrix(records))

    def predict_matrix(self, matrix: np.ndarray) -> list[RowPrediction]:
        """Score rows built by :meth:`matrix`.

        Raises:
            UnscorableError: some rows overflow the model's arithmetic (finite but huge values,
                e.g. 1e308, become infinite once scaled): no probability can be given for them.
        """
        proba = self._proba(matrix)
        if proba is None:
            rows = [i for i in range(len(matrix)) if self._proba(matrix[i : i + 1]) is None]
            raise UnscorableError(rows or list(range(len(matrix))))
        outside = (matrix < self._low) | (matrix > self._high)
        results = []
        for row, probs in enumerate(proba):
            best = int(np.argmax(probs))
            results.append(
                RowPrediction(
                    label=self.classes[best],
                    probabilities={c: float(p) for c, p in zip(self.classes, probs, strict=True)},
                    out_of_range=[self.features[i] for i in np.flatnonzero(outside[row])],
                )
            )
        return results

    def _proba(self, matrix: np.ndarray) -> np.ndarray | None:
        """Class probabilities, or None when the model cannot give finite ones."""
        with np.errstate(all="ignore"):
            try:
                proba = self.bundle.estimator.predict_proba(matrix)
            except ValueError:  # scikit-learn refuses the infinities its own scaling made
                return None
        return proba if np.isfinite(proba).all() else None


class UnscorableError(ValueError):
    """Records whose values the model cannot compute with (``rows``: their indices)."""

    def __init__(self, rows: list[int]) -> None:
        super().__init__(f"records {rows} cannot be scored")
        self.rows = rows


def strip_feature_names(estimator: Any) -> Any:
    """Let a pipeline fitted on a DataFrame take plain arrays without a warning per call.

    The service validates names itself and builds arrays in schema order, which is ~5x cheaper
    per single row than a one-row DataFrame.
    """
    steps = getattr(estimator, "steps", None)
    first = steps[0][1] if steps else estimator
    if hasattr(first, "feature_names_in_"):
        del first.feature_names_in_
    return estimator
