"""Loading and validating tabular classification data.

Validation runs before anything is fitted or logged, so bad data never reaches MLflow: each
problem is reported as one sentence (:class:`DataError`) that the CLI prints as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from train.errors import StepError

WINE_TARGET = "cultivar"
# The wine data's classes by scikit-learn's target code (class_0, class_1, class_2; UCI's 1, 2, 3):
# the three cultivars of Piedmont that Forina et al. analysed (PARVUS; Vitis 25:189-201, 1986):
# 59 Barolo wines, whose grape is Nebbiolo, 71 Grignolino and 48 Barbera. The one place that names
# them; everything downstream reads the labels from the data.
WINE_CULTIVARS = ("Nebbiolo", "Grignolino", "Barbera")
# The test split must hold at least one row of every class, and stratified cross-checks a few.
MIN_ROWS_PER_CLASS = 5


class DataError(StepError, ValueError):
    """The data cannot be used for training; the message says why in one sentence."""


@dataclass(frozen=True)
class Dataset:
    """Validated features (all numeric, finite) and string class labels."""

    features: pd.DataFrame
    target: pd.Series
    target_name: str
    name: str
    source: str

    @property
    def classes(self) -> list[str]:
        return sorted(self.target.unique().tolist())


def load_wine_frame() -> pd.DataFrame:
    """scikit-learn's wine data (ships with scikit-learn), target as cultivar names."""
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    frame: pd.DataFrame = bunch.frame.copy()
    frame = frame.drop(columns=["target"])
    frame[WINE_TARGET] = [WINE_CULTIVARS[int(i)] for i in bunch.target]
    return frame


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV, turning every failure into one clear sentence."""
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist.")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"Data file {path} is empty.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"Data file {path} is not a readable CSV: {exc}".strip()) from exc
    return frame


def load_dataset(path: Path | None, target: str | None) -> Dataset:
    """Load the given CSV (or the wine data when ``path`` is None) and validate it."""
    if path is None:
        return validate(load_wine_frame(), target or WINE_TARGET, name="wine", source="sklearn")
    if not target:
        raise DataError("--target is required with --data: name the column to predict.")
    return validate(read_csv(path), target, name=path.stem, source=str(path))


def validate(
    frame: pd.DataFrame,
    target: str,
    *,
    name: str,
    source: str,
    min_rows_per_class: int = MIN_ROWS_PER_CLASS,
) -> Dataset:
    """Check that ``frame`` can train a classifier for ``target``, else raise :class:`DataError`."""
    frame = frame.rename(columns=str)
    if target not in frame.columns:
        shown = ", ".join(list(frame.columns)[:20])
        raise DataError(f"Target column '{target}' is not in the data (columns: {shown}).")
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise DataError(f"Column name(s) {_quote(dupes)} appear more than once.")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"There is no feature column besides the target '{target}'.")

    non_numeric = [c for c in features.columns if not _is_numeric(features[c])]
    if non_numeric:
        raise DataError(
            f"Feature column(s) {_quote(non_numeric)} are not numeric; "
            "encode them as numbers or drop them."
        )
    features = features.astype("float64")
    _check_finite(features)

    labels = frame[target]
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise DataError(
            f"Target column '{target}' has {int(labels.isna().sum())} missing value(s) "
            f"(first at data row {row + 1})."
        )
    labels = labels.astype(str).rename(target)
    counts = labels.value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else "none"
        raise DataError(
            f"Target column '{target}' has only one class ('{only}'); "
            "a classifier needs at least 2."
        )
    small = counts[counts < min_rows_per_class]
    if len(small):
        worst = small.sort_values().index[0]
        raise DataError(
            f"Class '{worst}' has only {int(small[worst])} row(s); every class needs at least "
            f"{min_rows_per_class} so that the held-out split can include it."
        )
    return Dataset(
        features=features.reset_index(drop=True),
        target=labels.reset_index(drop=True),
        target_name=target,
        name=name,
        source=source,
    )


def _is_numeric(column: pd.Series) -> bool:
    return bool(ptypes.is_numeric_dtype(column)) and not ptypes.is_complex_dtype(column)


def _check_finite(features: pd.DataFrame) -> None:
    values = features.to_numpy()
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    column = features.columns[cols[0]]
    count = int(bad[:, cols[0]].sum())
    kind = "missing" if np.isnan(values[rows[0], cols[0]]) else "infinite"
    raise DataError(
        f"Feature '{column}' has {count} missing or infinite value(s) "
        f"(first: {kind} at data row {rows[0] + 1}); clean or impute them first."
    )


def _quote(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
