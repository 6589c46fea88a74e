"""Records for ``cepage predict`` from a CSV: each cell typed by the served model's schema.

A CSV is text; the API wants JSON numbers, booleans, strings and nulls (contracts/features.py).
The schema comes from the service's ``GET /metadata``, so any model's CSV works as exported.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contracts.features import CellError, parse_cell


class RecordsError(ValueError):
    """The CSV cannot be turned into records; the message names the row and column."""


def csv_records(
    path: Path, features: list[Mapping[str, Any]], target: str | None = None
) -> list[dict[str, Any]]:
    """One record per row. The ``target`` column (a labelled file) is left out; any other
    column that is not a feature is passed on, and the API names it."""
    by_name = {f["name"]: f for f in features}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RecordsError(f"{path} is not a readable CSV: {exc}") from None
    records = []
    for number, row in enumerate(rows, start=2):  # as a spreadsheet shows it: the header is 1
        record: dict[str, Any] = {}
        for name, text in row.items():
            if name is None:
                raise RecordsError(f"{path}: row {number} has more cells than the header.")
            feature = by_name.get(name)
            if name == target and feature is None:
                continue
            if feature is None:
                record[name] = text
                continue
            try:
                value = parse_cell(feature, text)
            except CellError as exc:
                raise RecordsError(f"{path}: row {number}, column '{name}': {exc}.") from None
            if value is not None:  # a blank is left out: the API names it if it is required
                record[name] = value
        records.append(record)
    if not records:
        raise RecordsError(f"{path} has no rows to score.")
    return records
