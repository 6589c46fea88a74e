"""Batch scoring of a table: check it against the feature schema, send it in chunks, join answers.

Kept free of Streamlit so it can be tested against the real service on its own.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Protocol

import pandas as pd

from ui.responses import FeatureSchema, Prediction

LABEL_COLUMN = "predicted_label"
OUT_OF_RANGE_COLUMN = "out_of_range"
ID_COLUMN = "prediction_id"
PROBABILITY_PREFIX = "probability_"
MAX_ROWS_NAMED = 5


class BatchError(Exception):
    """The table cannot be scored as it is; ``str(error)`` says what to fix. No request was sent."""


class Predicts(Protocol):
    """What scoring needs from the API client."""

    def predict(self, records: list[dict[str, float]]) -> list[Prediction]: ...


def read_csv(data: bytes) -> pd.DataFrame:
    """Parse an uploaded CSV file.

    Raises:
        BatchError: the bytes are not a CSV table with at least one row.
    """
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BatchError(f"The file is not a readable CSV table: {exc}") from None
    if frame.empty:
        raise BatchError("The file has no rows to score.")
    return frame


def check_columns(frame: pd.DataFrame, schema: FeatureSchema) -> None:
    """Every feature of the schema, and nothing else, must be a column.

    Raises:
        BatchError: naming the missing and the unexpected columns.
    """
    columns = [str(c) for c in frame.columns]
    missing = [name for name in schema.names if name not in columns]
    extra = [name for name in columns if name not in schema.names]
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"missing columns: {_names(missing)}")
    if extra:
        problems.append(f"unexpected columns: {_names(extra)}")
    if duplicated:
        problems.append(f"duplicated columns: {_names(duplicated)}")
    if problems:
        raise BatchError(
            "The CSV does not match the model's features ("
            + "; ".join(problems)
            + f"). Expected exactly these {len(schema.names)} columns: {_names(schema.names)}."
        )


def check_values(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """The feature columns as finite floats, in schema order.

    Raises:
        BatchError: naming each column with empty or non-numeric cells and the first such rows
            (numbered as in a spreadsheet: the header is row 1).
    """
    values = frame[schema.names].apply(pd.to_numeric, errors="coerce").astype("float64")
    bad = values.isna() | values.abs().eq(float("inf"))
    problems = []
    for name in schema.names:
        rows = bad[name].to_numpy().nonzero()[0] + 2
        if len(rows):
            shown = ", ".join(str(r) for r in rows[:MAX_ROWS_NAMED])
            more = f" and {len(rows) - MAX_ROWS_NAMED} more" if len(rows) > MAX_ROWS_NAMED else ""
            problems.append(f"{name!r} (rows {shown}{more})")
    if problems:
        raise BatchError(
            "Some cells are empty or not numbers: " + "; ".join(problems) + ". Fix them and retry."
        )
    return values


def score_frame(
    client: Predicts,
    frame: pd.DataFrame,
    schema: FeatureSchema,
    max_records: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Score every row of ``frame`` in requests of at most ``max_records`` rows.

    Returns:
        The input columns followed by the predicted label, one probability column per class,
        the out-of-range features (comma-separated) and the prediction id (for feedback).

    Raises:
        BatchError: the table does not match the schema (no request is sent).
        ApiError: a request failed.
    """
    check_columns(frame, schema)
    values = check_values(frame, schema)
    records = [
        dict(zip(schema.names, map(float, row), strict=True))
        for row in values.itertuples(index=False, name=None)
    ]
    chunk = max(1, max_records)
    predictions: list[Prediction] = []
    for start in range(0, len(records), chunk):
        predictions.extend(client.predict(records[start : start + chunk]))
        if on_progress is not None:
            on_progress(len(predictions), len(records))
    return _join(frame, schema, predictions)


def to_csv(frame: pd.DataFrame) -> bytes:
    """The scored table as CSV bytes for the download button."""
    return frame.to_csv(index=False).encode("utf-8")


def template_csv(schema: FeatureSchema) -> bytes:
    """A one-row CSV with the expected header and the training medians."""
    row = {f.name: (round(f.median) if f.is_integer else f.median) for f in schema.features}
    return to_csv(pd.DataFrame([row], columns=schema.names))


def _join(
    frame: pd.DataFrame, schema: FeatureSchema, predictions: list[Prediction]
) -> pd.DataFrame:
    scored = pd.DataFrame(
        {
            LABEL_COLUMN: [p.label for p in predictions],
            **{
                f"{PROBABILITY_PREFIX}{c}": [p.probabilities.get(c) for p in predictions]
                for c in schema.classes
            },
            OUT_OF_RANGE_COLUMN: [", ".join(p.out_of_range) for p in predictions],
            ID_COLUMN: [p.id for p in predictions],
        },
        index=frame.index,
    )
    return pd.concat([frame[schema.names], scored], axis=1)


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
