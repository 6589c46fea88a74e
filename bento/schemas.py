"""The service's request and response bodies (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# A record's value is whatever JSON holds: which type each feature takes is the model's, so the
# service checks every value against the served feature schema, one clear error per field
# (bento/predictor.py), and GET /docs.json shows each feature's real type (bento/openapi.py).
FeatureValue = Any


class PredictRequest(BaseModel):
    """One or more rows to score; each maps every feature name to its value."""

    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, FeatureValue]] = Field(
        min_length=1,
        description="Rows to score; the feature names are those of GET /metadata.",
        examples=[[{"alcohol": 13.2, "malic_acid": 1.8}]],
    )


class Prediction(BaseModel):
    """The answer for one record."""

    id: str = Field(description="Signed prediction id: send it back with POST /feedback.")
    label: str = Field(description="The predicted class.")
    probabilities: dict[str, float] = Field(description="Probability of each class.")
    out_of_range: list[str] = Field(
        description="Features whose value lies outside the training range, or is a category "
        "never seen in training (answer less reliable)."
    )


class ModelRef(BaseModel):
    """Which model answered."""

    name: str
    version: str


class PredictResponse(BaseModel):
    """Predictions in the order of the records, and the model that made them."""

    model: ModelRef
    predictions: list[Prediction]


class FeedbackRequest(BaseModel):
    """The true label of an earlier prediction."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(min_length=1, max_length=512)
    label: str = Field(min_length=1, max_length=256, description="The true class.")


class FeedbackResponse(BaseModel):
    """What the feedback was recorded as."""

    prediction_id: str
    label: str
    predicted: str
    correct: bool
    model_version: str


class Metadata(BaseModel):
    """The served model and its feature schema (the UI builds its form from it)."""

    name: str
    version: str
    bento_model: str
    run_id: str
    created_at: str
    metrics: dict[str, float]
    max_records: int
    feature_schema: dict[str, Any]
