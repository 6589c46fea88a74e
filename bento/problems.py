"""Our own input checks, answered the way BentoML answers pydantic's: a 400 naming the field."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from bento.predictor import InputProblem


def problems_error(title: str, problems: list[InputProblem]) -> ValidationError:
    """A pydantic ValidationError (BentoML turns it into a 400) with one entry per problem."""
    details = [
        InitErrorDetails(type=PydanticCustomError(p.kind, p.message), loc=p.loc, input=None)
        for p in problems
    ]
    return ValidationError.from_exception_data(title, details)


def unscorable(rows: list[int]) -> list[InputProblem]:
    """A problem per record whose values overflow the model (finite, but far beyond any scale)."""
    return [
        InputProblem(
            ("records", row),
            "unscorable",
            "The model cannot score this record: its values are so far outside the training "
            "range (GET /metadata) that the model's arithmetic overflows",
        )
        for row in rows
    ]


def unknown_prediction(reason: str) -> list[InputProblem]:
    """The feedback's prediction id is not one this service issued (or it expired)."""
    return [InputProblem(("prediction_id",), "unknown_prediction", f"Prediction id {reason}")]


def duplicate_feedback(reason: str) -> list[InputProblem]:
    """The feedback's prediction id was already used for feedback (in this worker)."""
    return [InputProblem(("prediction_id",), "duplicate_feedback", f"Prediction id {reason}")]


def unknown_label(label: str, classes: list[str]) -> list[InputProblem]:
    """The feedback's label is not a class of the model."""
    return [
        InputProblem(
            ("label",), "unknown_label", f"Unknown class {label!r}; expected one of {classes}"
        )
    ]


def not_explainable(reason: str) -> list[InputProblem]:
    """The request asked for explanations the served model cannot give."""
    return [
        InputProblem(
            ("explain",),
            "not_explainable",
            f"The served model cannot explain its predictions: {reason}; send the request "
            "without explain",
        )
    ]
