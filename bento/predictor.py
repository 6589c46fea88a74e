"""The prediction logic, free of BentoML so that unit tests can hand it any estimator.

A :class:`ModelBundle` is what the service loads from the BentoML store: the native scikit-learn
estimator (``predict_proba`` available), the feature schema that travelled with it from training,
and who it is (versions, run id, metrics).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contracts.features import (
    BOOLEAN,
    CATEGORY,
    NUMERIC_KINDS,
    categories,
    kind,
    nullable,
    takes_array,
)


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
    # The model card packaging made (contracts/model_card.py); None: packaged before cards.
    card: dict[str, Any] | None = None
    # The cost of 1 row against N, measured when it was packaged (bento/batching.py), as stored
    # (JSON text); None: packaged before it was measured.
    batch_profile: str | None = None


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


@dataclass(frozen=True)
class Inputs:
    """Checked records in the forms the model and monitoring need.

    ``numbers`` holds every number, integer and boolean (0/1) feature as float64, NaN where a
    record left it empty (and in category columns); ``codes`` maps each category column to each
    record's index in the schema's ``categories`` (:data:`UNSEEN`, :data:`BLANK`).
    """

    model_input: Any  # the float array itself, or a DataFrame for a ColumnTransformer
    numbers: np.ndarray
    codes: dict[int, np.ndarray]


UNSEEN = -1  # a category value not seen in training
# Longer than any category a CSV column holds in practice (the OpenAPI document says so too).
MAX_TEXT = 256
_LARGEST = sys.float_info.max
BLANK = -2  # no value


class Predictor:
    """Validates records against the schema and scores them in schema order."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        specs = bundle.schema["features"]
        self.features: list[str] = [f["name"] for f in specs]
        self.kinds: list[str] = [kind(f) for f in specs]
        self.nullable: list[bool] = [nullable(f) for f in specs]
        self.categories: dict[int, dict[str, int]] = {
            j: {c: i for i, c in enumerate(categories(f))}
            for j, f in enumerate(specs)
            if self.kinds[j] == CATEGORY
        }
        self._feature_set = set(self.features)
        self._index = {name: j for j, name in enumerate(self.features)}
        # Ranges of numbers only: NaN bounds never flag a boolean, a category or a blank.
        numeric = [k in NUMERIC_KINDS for k in self.kinds]
        self._low = np.array(
            [f["min"] if n else np.nan for f, n in zip(specs, numeric, strict=True)]
        )
        self._high = np.array(
            [f["max"] if n else np.nan for f, n in zip(specs, numeric, strict=True)]
        )
        # The fast path: a float array for `scale -> model` (train/pipeline.py).
        self.takes_array = takes_array(specs)
        self.classes: list[str] = [str(c) for c in bundle.estimator.classes_]

    def check(self, records: Sequence[Mapping[str, Any]], limit: int) -> list[InputProblem]:
        """Every missing, unknown or mistyped feature, and a too-long request; [] when valid."""
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
            if record.keys() != self._feature_set:
                problems.extend(self._names(index, record))
            for name, value in record.items():
                j = self._index.get(name)
                if j is None:
                    continue
                problem = self._value(j, value)
                if problem is not None:
                    problems.append(InputProblem(("records", index, name), *problem))
        return problems

    def _names(self, index: int, record: Mapping[str, Any]) -> list[InputProblem]:
        problems = [
            InputProblem(("records", index, name), "missing", "Field required")
            for j, name in enumerate(self.features)
            if name not in record and not self.nullable[j]
        ]
        problems.extend(
            InputProblem(
                ("records", index, name),
                "extra_forbidden",
                "Unknown feature (see GET /metadata for the feature names)",
            )
            for name in record
            if name not in self._feature_set
        )
        return problems

    def _value(self, j: int, value: Any) -> tuple[str, str] | None:
        """(kind, message) when ``value`` does not fit feature ``j``, else None."""
        which = self.kinds[j]
        if value is None:
            if self.nullable[j]:
                return None
            return ("missing_value", "This feature had a value on every training row: give one")
        if which in NUMERIC_KINDS:
            # An integer feature takes a fraction too: the model computes in floats, and a
            # client of the wine demo may send a proline of 1065.5 (docs/api.md).
            if type(value) is bool or not isinstance(value, int | float):
                return ("float_type", "Input should be a number")
            if not -_LARGEST <= value <= _LARGEST:  # NaN fails both; so do huge JSON integers
                return ("finite_number", "Input should be a finite number")
        elif which == BOOLEAN:
            if type(value) is not bool:
                return ("bool_type", "Input should be true or false")
        elif not isinstance(value, str):
            known = list(self.categories[j])[:10]
            return ("string_type", f"Input should be a string, one of the categories {known}")
        elif len(value) > MAX_TEXT:
            return ("string_too_long", f"String should have at most {MAX_TEXT} characters")
        return None

    def inputs(self, records: Sequence[Mapping[str, Any]]) -> Inputs:
        """Already-checked records in model form (absent nullable features are blanks)."""
        if self.takes_array:
            numbers = np.array(
                [[r[name] for name in self.features] for r in records], dtype="float64"
            )
            return Inputs(numbers, numbers, {})
        import pandas as pd

        numbers = np.full((len(records), len(self.features)), np.nan)
        columns: dict[str, Any] = {}
        codes: dict[int, np.ndarray] = {}
        for j, name in enumerate(self.features):
            values = [r.get(name) for r in records]
            if j in self.categories:
                known = self.categories[j]
                codes[j] = np.array(
                    [BLANK if v is None else known.get(v, UNSEEN) for v in values], dtype=np.int64
                )
                columns[name] = np.array([np.nan if v is None else v for v in values], dtype=object)
            else:
                numbers[:, j] = [np.nan if v is None else float(v) for v in values]
                columns[name] = numbers[:, j]
        return Inputs(pd.DataFrame(columns, columns=self.features), numbers, codes)

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[RowPrediction]:
        """Score already-checked records."""
        return self.predict_inputs(self.inputs(records))

    def predict_inputs(self, inputs: Inputs) -> list[RowPrediction]:
        """Score rows built by :meth:`inputs`.

        Raises:
            UnscorableError: some rows overflow the model's arithmetic (finite but huge values,
                e.g. 1e308, become infinite once scaled): no probability can be given for them.
        """
        proba = self._proba(inputs.model_input)
        if proba is None or not np.isfinite(proba).all():
            raise UnscorableError(self._unscorable(inputs.model_input, 0, proba))
        with np.errstate(invalid="ignore"):
            outside = (inputs.numbers < self._low) | (inputs.numbers > self._high)
        for j, codes in inputs.codes.items():
            outside[:, j] = codes == UNSEEN
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

    def _unscorable(self, model_input: Any, offset: int, proba: np.ndarray | None) -> list[int]:
        """The rows (indices from ``offset``) the model gives no finite probability for.

        Read off the answer when there is one. When scikit-learn refused the whole call (it
        rejects the infinities its own scaling made), a pipeline's preparation is run once to
        find the rows it makes infinite; anything else is halved until the culprits are found.
        Either way a batch of ``max_records`` costs a few calls, not one per row on the event loop.
        """
        if proba is not None:
            return [offset + int(i) for i in np.flatnonzero(~np.isfinite(proba).all(axis=1))]
        found = self._unscorable_prepared(model_input)
        if found is not None:
            return [offset + i for i in found]
        count = len(model_input)
        if count == 1:
            return [offset]
        middle = count // 2
        rows = []
        for start, stop in ((0, middle), (middle, count)):
            part = model_input[start:stop]
            answer = self._proba(part)
            if answer is None or not np.isfinite(answer).all():
                rows.extend(self._unscorable(part, offset + start, answer))
        return rows

    def _unscorable_prepared(self, model_input: Any) -> list[int] | None:
        """Bad rows found with two calls: the pipeline's preparation, then its estimator on the
        rows that stayed finite (None when the model is not such a pipeline or it fails)."""
        estimator = self.bundle.estimator
        if len(getattr(estimator, "steps", ())) < 2:
            return None
        with np.errstate(all="ignore"):
            try:
                prepared = np.asarray(estimator[:-1].transform(model_input), dtype="float64")
                finite = np.isfinite(prepared).all(axis=1)
                kept = np.flatnonzero(finite)
                proba = estimator[-1].predict_proba(prepared[kept]) if len(kept) else None
            except (ValueError, TypeError):
                return None
        bad = set(np.flatnonzero(~finite).tolist())
        if proba is not None:
            bad.update(kept[~np.isfinite(proba).all(axis=1)].tolist())
        return sorted(bad)

    def _proba(self, model_input: Any) -> np.ndarray | None:
        """Class probabilities (maybe not finite), or None when scikit-learn refuses the call."""
        with np.errstate(all="ignore"):
            try:
                proba: np.ndarray = self.bundle.estimator.predict_proba(model_input)
            except ValueError:  # scikit-learn refuses the infinities its own scaling made
                return None
        return proba


class UnscorableError(ValueError):
    """Records whose values the model cannot compute with (``rows``: their indices)."""

    def __init__(self, rows: list[int]) -> None:
        super().__init__(f"records {rows} cannot be scored")
        self.rows = rows


def strip_feature_names(estimator: Any) -> Any:
    """Let a ``scale -> model`` pipeline fitted on a DataFrame take plain arrays without a
    warning per call.

    The service validates names itself and builds arrays in schema order, which is ~5x cheaper
    per single row than a one-row DataFrame. A ``ColumnTransformer`` keeps its names: it picks
    its columns by them.
    """
    from sklearn.compose import ColumnTransformer

    steps = getattr(estimator, "steps", None)
    first = steps[0][1] if steps else estimator
    if isinstance(first, ColumnTransformer):
        return estimator
    if hasattr(first, "feature_names_in_"):
        del first.feature_names_in_
    return estimator
