"""Data validation: every bad input stops with one clear sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from train.data import WINE_CULTIVARS, DataError, load_dataset, load_wine_frame, validate


def frame(rows: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b/c": rng.integers(0, 5, size=rows),
            "y": ["x", "z"] * (rows // 2),
        }
    )


def test_wine_loads_with_named_classes_and_a_slash_feature() -> None:
    dataset = load_dataset(None, None)
    assert dataset.classes == ["Barbera", "Grignolino", "Nebbiolo"]
    assert "od280/od315_of_diluted_wines" in dataset.features.columns
    assert dataset.features.shape == (178, 13)
    assert dataset.features.dtypes.eq("float64").all()


def test_wine_cultivars_follow_the_source_counts() -> None:
    # Forina et al. (the UCI source): 59 Barolo (Nebbiolo), 71 Grignolino, 48 Barbera wines, which
    # are scikit-learn's target codes 0, 1 and 2 in that order.
    from sklearn.datasets import load_wine

    bunch = load_wine()
    assert list(bunch.target_names) == ["class_0", "class_1", "class_2"]
    assert np.bincount(bunch.target).tolist() == [59, 71, 48]
    counts = load_wine_frame()["cultivar"].value_counts().to_dict()
    assert counts == {"Nebbiolo": 59, "Grignolino": 71, "Barbera": 48}
    assert WINE_CULTIVARS == ("Nebbiolo", "Grignolino", "Barbera")


def test_valid_frame_passes_and_labels_become_strings() -> None:
    data = frame()
    data["y"] = [0, 1] * 6
    dataset = validate(data, "y", name="t", source="t")
    assert dataset.classes == ["0", "1"]
    assert list(dataset.features.columns) == ["a", "b/c"]


@pytest.mark.parametrize(
    ("mutate", "target", "expected"),
    [
        (lambda f: f, "missing", "Target column 'missing' is not in the data"),
        (lambda f: f.assign(b="text"), "y", "Feature column(s) 'b' are not numeric"),
        (lambda f: f.assign(a=[np.nan] + [1.0] * 11), "y", "Feature 'a' has 1 missing"),
        (lambda f: f.assign(a=[1.0] * 11 + [np.inf]), "y", "infinite at data row 12"),
        (lambda f: f.assign(y="only"), "y", "has only one class ('only')"),
        (lambda f: f.assign(y=["x"] * 10 + ["z"] * 2), "y", "Class 'z' has only 2 row(s)"),
        (lambda f: f.assign(y=[None] + ["x", "z"] * 5 + ["x"]), "y", "1 missing value(s)"),
        (lambda f: f[["y"]], "y", "no feature column besides the target"),
    ],
)
def test_bad_data_is_refused_with_one_sentence(mutate, target, expected) -> None:
    with pytest.raises(DataError) as excinfo:
        validate(mutate(frame()), target, name="t", source="t")
    message = str(excinfo.value)
    assert expected in message
    assert "\n" not in message


def test_csv_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv", "y")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_dataset(empty, "y")
    with pytest.raises(DataError, match="--target is required"):
        load_dataset(empty, None)


def test_csv_roundtrip_matches_in_memory_validation(tmp_path: Path) -> None:
    wine = load_wine_frame()
    path = tmp_path / "wine.csv"
    wine.to_csv(path, index=False)
    dataset = load_dataset(path, "cultivar")
    assert dataset.name == "wine"
    assert dataset.features.shape == (178, 13)
