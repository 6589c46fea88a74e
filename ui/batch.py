"""Batch scoring of a table: check it against the feature schema, send it in chunks, join answers.

The CSV is read as text, every cell as written, and each cell is turned into the JSON value its
feature's kind calls for (``contracts.features.parse_cell``): text categories, yes/no columns and
blank cells arrive as the person wrote them, and a cell that does not fit is named with its row
before any request is sent. Kept free of Streamlit so it can be tested against the real service.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Protocol

import pandas as pd

from contracts.features import CellError, parse_cell
from ui.form import default_value
from ui.responses import Feature, FeatureSchema, Prediction, Record, Value

LABEL_COLUMN = "predicted_label"
OUT_OF_RANGE_COLUMN = "out_of_range"
ID_COLUMN = "prediction_id"
PROBABILITY_PREFIX = "probability_"
MAX_ROWS_NAMED = 5


class BatchError(Exception):
    """The table cannot be scored as it is; ``str(error)`` says what to fix. No request was sent."""


class Predicts(Protocol):
    """What scoring needs from the API client."""

    def predict(self, records: list[Record]) -> list[Prediction]: ...


def read_csv(
    data: bytes, *, max_bytes: int | None = None, max_rows: int | None = None
) -> pd.DataFrame:
    """Parse an uploaded CSV file, every cell as text (a blank cell is ``""``).

    Text, not pandas' guesses: a category written ``007`` stays ``007``, and the kind of each
    column comes from the model's schema, not from its first rows (``parse_cell`` then reads
    ``NA`` and the like as blanks, as training did).

    Raises:
        BatchError: the bytes are not a CSV table with at least one row, or the file is over
            ``max_bytes`` or ``max_rows`` (the UI's limits: no request is sent).
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise BatchError(
            f"The file is {len(data) / 1e6:.1f} MB; at most {max_bytes / 1e6:g} MB can be "
            "scored here (CEPAGE_UI_MAX_UPLOAD_MB). Split it, or use the API directly."
        )
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BatchError(f"The file is not a readable CSV table: {exc}") from None
    if frame.empty:
        raise BatchError("The file has no rows to score.")
    if max_rows is not None and len(frame) > max_rows:
        raise BatchError(
            f"The file has {len(frame)} rows; at most {max_rows} are scored at once here "
            "(CEPAGE_UI_MAX_BATCH_ROWS). Split it, or use the API directly."
        )
    return frame


def check_columns(frame: pd.DataFrame, schema: FeatureSchema) -> None:
    """Every feature of the schema, and nothing else, must be a column; the model's target
    may be there too (a labelled file): it is kept beside the predictions, not sent.

    Raises:
        BatchError: naming the missing and the unexpected columns.
    """
    columns = [str(c) for c in frame.columns]
    missing = [name for name in schema.names if name not in columns]
    allowed = {*schema.names, schema.target}
    extra = [name for name in columns if name not in allowed]
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


def check_values(frame: pd.DataFrame, schema: FeatureSchema) -> list[Record]:
    """The rows as records of JSON values (by each feature's kind), in schema order.

    Raises:
        BatchError: naming each column with cells that do not fit its feature (text in a number
            column, a word that is not yes/no, a blank where the model needs a value) and the
            first such rows, numbered as in a spreadsheet: the header is row 1.
    """
    columns: dict[str, list[Value]] = {}
    problems: list[str] = []
    for feature in schema.features:
        values, column_problems = _parse_column(feature, list(frame[feature.name]))
        columns[feature.name] = values
        problems.extend(column_problems)
    if problems:
        raise BatchError(
            "Some cells do not fit the model's features: "
            + "; ".join(problems)
            + ". Fix them and retry."
        )
    return [{name: columns[name][row] for name in schema.names} for row in range(len(frame.index))]


def _parse_column(feature: Feature, cells: list[object]) -> tuple[list[Value], list[str]]:
    """A column's cells as values, and its problems (blank where required, or wrong type)."""
    values: list[Value] = []
    blank: list[int] = []
    wrong: list[int] = []
    first_reason = ""
    entry = {"name": feature.name, "kind": feature.kind}  # what parse_cell reads of a feature
    for position, cell in enumerate(cells):
        try:
            value = parse_cell(entry, _cell_text(cell))
        except CellError as exc:
            wrong.append(position)
            first_reason = first_reason or str(exc)
            values.append(None)
            continue
        if value is None and not feature.nullable:
            blank.append(position)
        values.append(value)
    problems = []
    if wrong:
        problems.append(f"{feature.name!r} ({_rows(wrong)}): {first_reason}")
    if blank:
        problems.append(f"{feature.name!r} ({_rows(blank)}): empty, but the model needs a value")
    return values, problems


def _cell_text(cell: Any) -> str | None:
    """A cell as text; a missing one (None, NaN or NA in a frame built in code) as None."""
    if cell is None or (not isinstance(cell, str) and bool(pd.isna(cell))):
        return None
    return str(cell)


def _rows(positions: list[int]) -> str:
    """``rows 3, 5 and 2 more``: spreadsheet numbers (the header is row 1) of the first few."""
    shown = ", ".join(str(p + 2) for p in positions[:MAX_ROWS_NAMED])
    more = len(positions) - MAX_ROWS_NAMED
    return f"rows {shown}" + (f" and {more} more" if more > 0 else "")


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
    records = check_values(frame, schema)
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
    """A one-row CSV with the expected header and a typical value of each feature: the training
    median of a number, the most frequent category, the majority of a yes/no as true/false."""
    row = {f.name: _template_cell(default_value(f)) for f in schema.features}
    return to_csv(pd.DataFrame([row], columns=schema.names))


def _template_cell(value: Value) -> str | float | int:
    """A value as the CSV writes it (booleans as ``true``/``false``, which the check reads back)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


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
    kept = [*schema.names, *([schema.target] if schema.target in frame.columns else [])]
    return pd.concat([frame[kept], scored], axis=1)


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
