"""The service's request and response bodies (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

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
    # Strict: "false" or 0 must not be read as a wish (a 400 names the field instead).
    explain: StrictBool = Field(
        default=False,
        description="Also return, per record, each feature's contribution to the predicted "
        "class's score (docs/api.md, 'Why this prediction'). Off by default: it costs time.",
    )


class Explanation(BaseModel):
    """Why the model gave its predicted class the score it did: base + sum(contributions)."""

    score_kind: Literal["logit", "probability"] = Field(
        description="What score is: the class's logit (a linear model; with two classes, the "
        "log-odds of the predicted class) or its probability (a tree ensemble)."
    )
    score: float = Field(description="The model's score for the predicted class.")
    base: float = Field(
        description="The score before any feature: the intercept (linear) or the class's "
        "share of the training rows (trees)."
    )
    contributions: dict[str, float] = Field(
        description="Each feature's share of score - base, in the feature schema's order; "
        "positive pushes towards the predicted class."
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
    # Left out of the JSON unless asked for: the default answer keeps its shape and size.
    explanation: Explanation | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description='Present when the request asked for it ("explain": true).',
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
