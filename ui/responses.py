"""What the model service answers, as typed values: the only shapes the page and the batch
scoring work with (built from ``GET /metadata``, ``POST /predict`` and ``POST /feedback``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Feature:
    """One input of the model, as described by the training data."""

    name: str
    dtype: str
    min: float
    max: float
    median: float

    @property
    def is_integer(self) -> bool:
        return self.dtype == "integer"


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
class Prediction:
    """The service's answer for one record."""

    id: str
    label: str
    probabilities: dict[str, float]
    out_of_range: tuple[str, ...]


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
    features = tuple(
        Feature(
            name=str(f["name"]),
            dtype=str(f.get("dtype", "number")),
            min=float(f["min"]),
            max=float(f["max"]),
            median=float(f["median"]),
        )
        for f in schema["features"]
    )
    if not features:
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
            features=features,
        ),
    )


def parse_prediction(item: Mapping[str, Any]) -> Prediction:
    """One item of ``POST /predict``'s ``predictions``."""
    return Prediction(
        id=str(item["id"]),
        label=str(item["label"]),
        probabilities={str(k): float(v) for k, v in item["probabilities"].items()},
        out_of_range=tuple(str(name) for name in item.get("out_of_range", [])),
    )
