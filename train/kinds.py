"""What kind each feature column is, decided from the data, and the column in its model form.

The rules (docs/cli.md, "How cepage reads your columns"), applied to a column's non-blank cells:

1. ``--drop COL`` removes a column; ``--categorical COL`` makes it a category whatever it holds.
2. A column with no value at all is refused (drop it).
3. Only 0/1, true/false, yes/no, t/f or y/n (any case): **boolean**.
4. Numbers: **integer** when every value is whole, else **number**. A whole-number column
   whose values are all distinct and consecutive (1, 2, 3 ...) is a row number or an id:
   refused. Infinite values are refused.
5. Text that looks like dates (``2024-05-01``, ``01/05/2024 10:00``) is refused: derive numbers
   from it (age in days, month) or drop it. cepage does not expand dates itself.
6. Other text is a **category** when it has at most :data:`MAX_CATEGORIES` distinct values; a
   text column with a different value on every row (names, ids, free text) or with more values
   is refused, with the two flags as the way out.

Blanks (empty cells, ``NA``, ``NaN``, ``null``: pandas' defaults) are allowed in every kind: the
feature is then *nullable* and the pipeline imputes it.

The model form of a column (what the pipeline is fitted on and what the service builds from a
request): numbers, integers and booleans as float64 with NaN for a blank (booleans as 0/1),
categories as text (``canonical_category``) with NaN for a blank.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from contracts.features import (
    BOOLEAN,
    CATEGORY,
    FALSE_WORDS,
    INTEGER,
    NUMBER,
    TRUE_WORDS,
    canonical_category,
    parse_boolean,
)
from train.errors import StepError

# More distinct text values than this is not a category but names, ids or free text.
MAX_CATEGORIES = 50
# A share of a text column's values that look like dates makes it a date column.
DATE_SHARE = 0.9
_DATE = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2})?.*)?\s*$")


class KindError(StepError, ValueError):
    """A column cannot be used as a feature; the message names it and says what to do."""


@dataclass(frozen=True)
class Column:
    """A feature column in model form, with its kind."""

    kind: str
    values: pd.Series


def model_column(name: str, column: pd.Series, *, categorical: bool = False) -> Column:
    """Decide the kind of ``column`` and convert it (the rules of this module's docstring).

    Raises:
        KindError: the column is empty, an id, dates, free text or holds infinite numbers.
    """
    present = column.dropna()
    if present.empty:
        raise KindError(
            f"Feature '{name}' is empty (every value is missing); drop it with --drop '{name}'."
        )
    if categorical:
        return Column(CATEGORY, as_category(column))
    if ptypes.is_bool_dtype(column):
        return Column(BOOLEAN, as_boolean(column))
    if ptypes.is_numeric_dtype(column) and not ptypes.is_complex_dtype(column):
        return _numeric(name, column.astype("float64"))
    text = present.astype(str).str.strip()
    if set(text.str.lower()) <= TRUE_WORDS | FALSE_WORDS:
        return Column(BOOLEAN, as_boolean(column))
    if text.str.match(_DATE).mean() >= DATE_SHARE:
        raise KindError(
            f"Feature '{name}' holds dates (e.g. '{text.iloc[0]}'); cepage does not expand dates: "
            f"derive numbers from it (e.g. days since, month) or drop it with --drop '{name}'."
        )
    distinct = text.nunique()
    if distinct == len(text) and len(text) > 1:
        raise KindError(
            f"Feature '{name}' has a different value on every row (like an id, a name or free "
            f"text), so a model cannot learn from it; drop it with --drop '{name}'."
        )
    if distinct > MAX_CATEGORIES:
        raise KindError(
            f"Feature '{name}' has {distinct} distinct text values, more than the "
            f"{MAX_CATEGORIES} a category may have; keep it anyway with --categorical '{name}' "
            f"or drop it with --drop '{name}'."
        )
    return Column(CATEGORY, as_category(column))


def _numeric(name: str, column: pd.Series) -> Column:
    values = column.to_numpy()
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise KindError(
            f"Feature '{name}' has {int(infinite.sum())} infinite value(s) (first at data row "
            f"{row + 1}); replace them with numbers or blanks."
        )
    present = values[~np.isnan(values)]
    if set(np.unique(present)) <= {0.0, 1.0}:
        return Column(BOOLEAN, column)
    if not np.all(np.mod(present, 1) == 0):
        return Column(NUMBER, column)
    if _looks_like_row_numbers(present):
        raise KindError(
            f"Feature '{name}' looks like a row number or an id (consecutive whole numbers, one "
            f"per row); drop it with --drop '{name}', or keep it with --categorical '{name}'."
        )
    return Column(INTEGER, column)


def _looks_like_row_numbers(present: np.ndarray) -> bool:
    distinct = np.unique(present)
    span = distinct[-1] - distinct[0] + 1
    return len(distinct) == len(present) and len(present) > 2 and span == len(present)


def as_boolean(column: pd.Series) -> pd.Series:
    """0/1 as float64 (NaN for a blank) from bools, 0/1 numbers or yes/no text."""

    def one(value: object) -> float:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return np.nan
        if isinstance(value, bool | np.bool_):
            return float(value)
        parsed = parse_boolean(str(value))
        return np.nan if parsed is None else float(parsed)

    return column.map(one).astype("float64")


def as_category(column: pd.Series) -> pd.Series:
    """Text values (``2.0`` written ``2``), NaN for a blank, in an object column."""
    return column.map(lambda v: np.nan if pd.isna(v) else canonical_category(v)).astype(object)


def as_number(column: pd.Series) -> pd.Series:
    """float64, NaN for a blank or a cell that is not a number."""
    return pd.to_numeric(column, errors="coerce").astype("float64")


def convert(column: pd.Series, kind: str) -> pd.Series:
    """``column`` in the model form of ``kind`` (for data read back, e.g. held-out rows)."""
    if kind == CATEGORY:
        return as_category(column)
    if kind == BOOLEAN:
        return as_boolean(column)
    return as_number(column)


def rare_categories(column: pd.Series, limit: int) -> list[str]:
    """The categories of ``column`` seen on fewer than ``limit`` rows."""
    counts = column.value_counts()
    return sorted(str(v) for v in counts[counts < limit].index)


def check_known(names: Iterable[str], columns: Iterable[str], flag: str) -> None:
    """Every column named by ``flag`` must exist."""
    known = list(columns)
    unknown = [n for n in names if n not in known]
    if unknown:
        shown = ", ".join(f"'{c}'" for c in known[:20])
        raise KindError(f"{flag} '{unknown[0]}' is not a column of the data (columns: {shown}).")
