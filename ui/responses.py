"""What the model service answers, as typed values: the only shapes the page and the batch
scoring work with (built from ``GET /metadata``, ``POST /predict`` and ``POST /feedback``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts import features

# A record's value for one feature, as JSON carries it: a number (whole for an integer feature),
# true/false, a category's text, or None (null) for an empty nullable feature.
Value = float | int | bool | str | None
Record = dict[str, Value]


@dataclass(frozen=True)
class Feature:
    """One input of the model, as described by the training data.

    ``min``, ``max`` and ``median`` are set for numbers and integers only; ``categories`` (most
    frequent first) for categories only; ``true_share`` for booleans only.
    """

    name: str
    kind: str = features.NUMBER
    min: float | None = None
    max: float | None = None
    median: float | None = None
    nullable: bool = False
    categories: tuple[str, ...] = ()
    true_share: float | None = None
    missing_share: float = 0.0

    @property
    def is_integer(self) -> bool:
        return self.kind == features.INTEGER

    @property
    def is_numeric(self) -> bool:
        return self.kind in features.NUMERIC_KINDS


@dataclass(frozen=True)
class FeatureSchema:
    """The model's inputs and outputs: the contract the form and the batch check are built from."""

    target: str
    classes: tuple[str, ...]
    features: tuple[Feature, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]


@dataclass(frozen=True)
class Metadata:
    """``GET /metadata``: the served model and its feature schema."""

    name: str
    version: str
    bento_model: str
    run_id: str
    created_at: str
    metrics: dict[str, float]
    max_records: int
    schema: FeatureSchema


@dataclass(frozen=True)
class Explanation:
    """Why the predicted class got its score: ``base + sum(contributions) == score``.

    ``score_kind`` is ``logit`` (a linear model) or ``probability`` (a tree ensemble);
    ``contributions`` has every feature, in the schema's order.
    """

    score_kind: str
    score: float
    base: float
    contributions: dict[str, float]


@dataclass(frozen=True)
class Prediction:
    """The service's answer for one record (``explanation`` only when it was asked for)."""

    id: str
    label: str
    probabilities: dict[str, float]
    out_of_range: tuple[str, ...]
    explanation: Explanation | None = None


@dataclass(frozen=True)
class FeedbackResult:
    """What a feedback was recorded as."""

    prediction_id: str
    label: str
    predicted: str
    correct: bool
    model_version: str


def parse_metadata(body: Mapping[str, Any]) -> Metadata:
    """``GET /metadata``'s body as :class:`Metadata` (KeyError/ValueError when malformed)."""
    schema = body["feature_schema"]
    parsed = tuple(parse_feature(f) for f in schema["features"])
    if not parsed:
        raise ValueError("the feature schema lists no features")
    return Metadata(
        name=str(body["name"]),
        version=str(body["version"]),
        bento_model=str(body.get("bento_model", "")),
        run_id=str(body.get("run_id", "")),
        created_at=str(body.get("created_at", "")),
        metrics={str(k): float(v) for k, v in body.get("metrics", {}).items()},
        max_records=int(body["max_records"]),
        schema=FeatureSchema(
            target=str(schema.get("target", "label")),
            classes=tuple(str(c) for c in schema["classes"]),
            features=parsed,
        ),
    )


def parse_feature(item: Mapping[str, Any]) -> Feature:
    """One feature of a version-1 (``dtype``, numbers only) or version-2 (``kind``) schema.

    Raises:
        KeyError, TypeError, ValueError: the feature lacks what its kind needs.
    """
    kind = features.kind(item)
    name = str(item["name"])
    common: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "nullable": features.nullable(item),
        "missing_share": float(item.get("missing_share") or 0.0),
    }
    if kind in features.NUMERIC_KINDS:
        return Feature(
            **common,
            min=float(item["min"]),
            max=float(item["max"]),
            median=float(item["median"]),
        )
    if kind == features.BOOLEAN:
        share = item.get("true_share")
        return Feature(**common, true_share=None if share is None else float(share))
    if kind == features.CATEGORY:
        categories = tuple(features.categories(item))
        if not categories:  # the form could offer nothing to choose
            raise ValueError("a category feature lists no categories")
        return Feature(**common, categories=categories)
    raise ValueError("a feature has an unknown kind")


def parse_prediction(item: Mapping[str, Any]) -> Prediction:
    """One item of ``POST /predict``'s ``predictions``."""
    return Prediction(
        id=str(item["id"]),
        label=str(item["label"]),
        probabilities={str(k): float(v) for k, v in item["probabilities"].items()},
        out_of_range=tuple(str(name) for name in item.get("out_of_range", [])),
        explanation=None
        if item.get("explanation") is None
        else parse_explanation(item["explanation"]),
    )


def parse_explanation(item: Mapping[str, Any]) -> Explanation:
    """A prediction's ``explanation`` (KeyError/TypeError/ValueError when malformed)."""
    return Explanation(
        score_kind=str(item["score_kind"]),
        score=float(item["score"]),
        base=float(item["base"]),
        contributions={str(k): float(v) for k, v in item["contributions"].items()},
    )
