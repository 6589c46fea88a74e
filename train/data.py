"""Loading and validating tabular classification data.

Validation runs before anything is fitted or logged, so bad data never reaches MLflow: each
problem is reported as one sentence (:class:`DataError`) that the CLI prints as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from contracts.features import CATEGORY, canonical_category
from train.errors import StepError
from train.kinds import KindError, check_known, model_column, rare_categories

WINE_TARGET = "cultivar"
# The wine data's classes by scikit-learn's target code (class_0, class_1, class_2; UCI's 1, 2, 3):
# the three cultivars of Piedmont that Forina et al. analysed (PARVUS; Vitis 25:189-201, 1986):
# 59 Barolo wines, whose grape is Nebbiolo, 71 Grignolino and 48 Barbera. The one place that names
# them; everything downstream reads the labels from the data.
WINE_CULTIVARS = ("Nebbiolo", "Grignolino", "Barbera")
# The test split must hold at least one row of every class, and stratified cross-checks a few.
MIN_ROWS_PER_CLASS = 5


# Fewer rows cannot train a classifier and still hold some out to judge it.
MIN_ROWS = 20
# A label with more distinct values than this is a measurement, not a class.
MAX_CLASSES = 50
# Categories seen on fewer training rows are grouped as "infrequent" by the encoder
# (train/pipeline.py); the data check says which.
MIN_CATEGORY_ROWS = 5


class DataError(StepError, ValueError):
    """The data cannot be used for training; the message says why in one sentence."""


@dataclass(frozen=True)
class Dataset:
    """Validated features in model form (train/kinds.py) and string class labels."""

    features: pd.DataFrame
    target: pd.Series
    target_name: str
    name: str
    source: str
    # Each feature's kind (contracts/features.py), in column order.
    kinds: dict[str, str] = field(default_factory=dict)
    # What the user should know but that does not stop training (rare categories), one sentence
    # each; the CLI prints them.
    notes: tuple[str, ...] = ()

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


def load_dataset(
    path: Path | None,
    target: str | None,
    *,
    categorical: Iterable[str] = (),
    drop: Iterable[str] = (),
) -> Dataset:
    """Load the given CSV (or the wine data when ``path`` is None) and validate it.

    ``categorical`` and ``drop`` override the kind rules (train/kinds.py) for named columns.
    """
    if path is None:
        return validate(
            load_wine_frame(),
            target or WINE_TARGET,
            name="wine",
            source="sklearn",
            categorical=categorical,
            drop=drop,
        )
    if not target:
        raise DataError("--target is required with --data: name the column to predict.")
    return validate(
        read_csv(path),
        target,
        name=path.stem,
        source=str(path),
        categorical=categorical,
        drop=drop,
    )


def validate(
    frame: pd.DataFrame,
    target: str,
    *,
    name: str,
    source: str,
    categorical: Iterable[str] = (),
    drop: Iterable[str] = (),
    min_rows_per_class: int = MIN_ROWS_PER_CLASS,
) -> Dataset:
    """Check that ``frame`` can train a classifier for ``target``, else raise :class:`DataError`.

    Each feature's kind is decided by train/kinds.py (``categorical``/``drop`` override it) and
    the column converted to the form the pipeline is fitted on.
    """
    frame = frame.rename(columns=str)
    categorical, drop = list(categorical), list(drop)
    if target not in frame.columns:
        shown = ", ".join(list(frame.columns)[:20])
        raise DataError(f"Target column '{target}' is not in the data (columns: {shown}).")
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise DataError(f"Column name(s) {_quote(dupes)} appear more than once.")
    _check_flags(frame, target, categorical, drop)
    features = frame.drop(columns=[target, *drop])
    if features.shape[1] == 0:
        raise DataError(f"There is no feature column besides the target '{target}'.")
    if len(frame) < MIN_ROWS:
        raise DataError(
            f"The data has only {len(frame)} row(s); at least {MIN_ROWS} are needed to train a "
            "model and hold some rows out to judge it."
        )
    labels = _labels(frame[target], target, min_rows_per_class)
    columns, kinds = {}, {}
    for column in features.columns:
        try:
            converted = model_column(column, features[column], categorical=column in categorical)
        except KindError as exc:
            raise DataError(str(exc)) from None
        columns[column], kinds[column] = converted.values, converted.kind
    model_frame = pd.DataFrame(columns, index=features.index)
    return Dataset(
        features=model_frame.reset_index(drop=True),
        target=labels.reset_index(drop=True),
        target_name=target,
        name=name,
        source=source,
        kinds=kinds,
        notes=tuple(_notes(model_frame, kinds)),
    )


def _check_flags(frame: pd.DataFrame, target: str, categorical: list[str], drop: list[str]) -> None:
    try:
        check_known(categorical, frame.columns, "--categorical")
        check_known(drop, frame.columns, "--drop")
    except KindError as exc:
        raise DataError(str(exc)) from None
    if target in categorical or target in drop:
        flag = "--categorical" if target in categorical else "--drop"
        raise DataError(f"{flag} '{target}' names the target; it applies to feature columns only.")


def _labels(labels: pd.Series, target: str, min_rows_per_class: int) -> pd.Series:
    """The target as text labels, refused when blank, continuous or too thin per class."""
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise DataError(
            f"Target column '{target}' has {int(labels.isna().sum())} missing value(s) "
            f"(first at data row {row + 1}); drop those rows or fill in their class."
        )
    distinct = labels.nunique()
    if ptypes.is_numeric_dtype(labels) and not ptypes.is_bool_dtype(labels):
        values = labels.to_numpy(dtype="float64")
        whole = bool(np.all(np.mod(values, 1) == 0))
        if not whole or distinct > MAX_CLASSES:
            raise DataError(
                f"Target column '{target}' looks continuous ({distinct} distinct numbers, e.g. "
                f"{values[0]:g}): cepage trains classifiers; bin it into classes or predict "
                "another column."
            )
    labels = labels.map(canonical_category).rename(target)
    counts = labels.value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else "none"
        raise DataError(
            f"Target column '{target}' has only one class ('{only}'); "
            "a classifier needs at least 2."
        )
    if distinct > MAX_CLASSES:
        raise DataError(
            f"Target column '{target}' has {distinct} classes, more than the {MAX_CLASSES} "
            "cepage trains on; group them or predict another column."
        )
    small = counts[counts < min_rows_per_class]
    if len(small):
        worst = small.sort_values().index[0]
        raise DataError(
            f"Class '{worst}' of '{target}' has only {int(small[worst])} row(s); every class "
            f"needs at least {min_rows_per_class} so that the held-out split can include it: "
            "collect more rows of it, merge it into another class or drop its rows."
        )
    return labels


def _notes(features: pd.DataFrame, kinds: dict[str, str]) -> list[str]:
    """A sentence per category feature with values too rare to be learned."""
    notes = []
    for column, kind in kinds.items():
        if kind != CATEGORY:
            continue
        rare = rare_categories(features[column], MIN_CATEGORY_ROWS)
        if rare:
            notes.append(
                f"Feature '{column}': {_quote(rare[:5])}{' ...' if len(rare) > 5 else ''} "
                f"appear(s) on fewer than {MIN_CATEGORY_ROWS} rows; the model groups such values "
                "as 'infrequent'. Collect more rows of them to have them learned on their own."
            )
    return notes


def _quote(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
