"""The feature schema's vocabulary: feature kinds, and how a text cell becomes a typed value.

Training writes the schema (``train/schema.py``); the service, the UI and the CLI read it. A
feature is a mapping with at least ``name`` and ``kind``:

- ``number`` / ``integer``: ``min``, ``max``, ``median`` and the drift ``reference`` (bin
  ``edges`` and ``fractions``), from the training rows that have a value;
- ``boolean``: ``true_share`` and the ``reference`` ``fractions`` of false and true;
- ``category``: ``categories`` (the values seen in training, most frequent first), their
  ``frequencies`` and the same shares as ``reference`` ``fractions``;
- every kind: ``nullable`` (the training data had blanks there, so a record may leave it
  empty) and ``missing_share`` (the share of training rows without a value).

Schemas written before kinds existed (``schema_version`` 1) carry ``dtype`` instead of ``kind``,
no ``nullable`` and only numbers: :func:`kind` and :func:`nullable` read both. Standard library
only: this module is copied into every image.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

NUMBER: Final = "number"
INTEGER: Final = "integer"
BOOLEAN: Final = "boolean"
CATEGORY: Final = "category"
KINDS: Final = (NUMBER, INTEGER, BOOLEAN, CATEGORY)
NUMERIC_KINDS: Final = (NUMBER, INTEGER)

# Text cells read as a blank: pandas' default markers, which training reads its CSV with, so a
# file scored later means the same as the file trained on (the Palmer penguins write NA).
BLANK_MARKERS: Final = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip

# Text cells read as booleans (case-insensitive), in training data and in CSVs sent for scoring.
TRUE_WORDS: Final = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS: Final = frozenset({"false", "f", "no", "n", "0", "0.0"})


def kind(feature: Mapping[str, Any]) -> str:
    """The feature's kind (``number`` for a version-1 schema without one)."""
    return str(feature.get("kind") or feature.get("dtype") or NUMBER)


def nullable(feature: Mapping[str, Any]) -> bool:
    """Whether a record may leave the feature empty (``null`` or absent)."""
    return bool(feature.get("nullable", False))


def categories(feature: Mapping[str, Any]) -> list[str]:
    """The values a category feature took in training ([] for other kinds)."""
    return [str(c) for c in feature.get("categories", [])]


def takes_array(features: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the model takes a plain float array: only numbers, none of them ever missing.

    Training then fits ``scale -> model`` (the fast path the service feeds a NumPy array); any
    other schema gets a ``ColumnTransformer`` that imputes and encodes, fed a DataFrame.
    """
    return all(kind(f) in NUMERIC_KINDS and not nullable(f) for f in features)


def parse_boolean(text: str) -> bool | None:
    """``yes``/``no``, ``true``/``false``, ``1``/``0`` (and their short forms) as a bool."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def canonical_category(value: object) -> str:
    """A category value as the schema lists it: text as is, ``2.0`` as ``2``."""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return str(value).strip()


def _category(feature: Mapping[str, Any], text: str) -> str:
    """The category a cell names: ``1.0`` is the training value ``1`` of a column of codes that
    pandas read as numbers; any other text is kept as written."""
    known = categories(feature)
    if text in known:
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    canonical = canonical_category(number)
    return canonical if canonical in known else text


class CellError(ValueError):
    """A text cell does not fit its feature; the message says what was expected."""


def parse_cell(feature: Mapping[str, Any], text: str | None) -> float | bool | str | None:
    """The JSON value a text cell (a CSV field) stands for, by the feature's kind.

    An empty cell, or one of pandas' blank markers (``NA``, ``null``...: :data:`BLANK_MARKERS`),
    is ``None``: the service accepts it for a nullable feature and names the field otherwise.
    Raises :class:`CellError` for a value of the wrong type.
    """
    if text is None or str(text).strip() in BLANK_MARKERS:
        return None
    text = str(text)
    which = kind(feature)
    if which == CATEGORY:
        return _category(feature, text.strip())
    if which == BOOLEAN:
        value = parse_boolean(text)
        if value is None:
            raise CellError(f"{text!r} is not a yes/no value (expected true/false, yes/no, 1/0)")
        return value
    try:
        number = float(text)
    except ValueError:
        raise CellError(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise CellError(f"{text!r} is not a finite number")
    if which == INTEGER and number.is_integer():
        return int(number)
    # A fraction for an integer feature is accepted, as by the API: the model computes in floats.
    return number
