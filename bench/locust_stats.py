"""Reading locust's CSV output into rows of figures (one per request kind)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One request kind's figures, from locust's CSV."""

    name: str
    requests: int
    failures: int
    per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def read_stats(path: Path) -> list[Row]:
    """The rows of locust's ``*_stats.csv`` (without the one-off metadata request)."""
    rows = []
    with path.open() as handle:
        for line in csv.DictReader(handle):
            if line["Name"] == "metadata":
                continue
            rows.append(
                Row(
                    name="all (aggregated)" if line["Name"] == "Aggregated" else line["Name"],
                    requests=int(line["Request Count"]),
                    failures=int(line["Failure Count"]),
                    per_s=float(line["Requests/s"]),
                    p50_ms=_float(line["50%"]),
                    p95_ms=_float(line["95%"]),
                    p99_ms=_float(line["99%"]),
                    max_ms=_float(line["Max Response Time"]),
                )
            )
    return rows


def read_failures(path: Path) -> list[str]:
    if not path.is_file():
        return []
    with path.open() as handle:
        return [f"{r['Occurrences']}x {r['Name']}: {r['Error']}" for r in csv.DictReader(handle)]


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
