"""Data validation: every bad input stops with one clear sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from train.data import WINE_CULTIVARS, DataError, load_dataset, load_wine_frame, validate


def frame(rows: int = 24) -> pd.DataFrame:
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
    data["y"] = [0, 1] * 12
    dataset = validate(data, "y", name="t", source="t")
    assert dataset.classes == ["0", "1"]
    assert list(dataset.features.columns) == ["a", "b/c"]
    assert dataset.kinds == {"a": "number", "b/c": "integer"}


def blanks(values: list, rows: int = 24) -> list:
    return values + [None] * (rows - len(values))


@pytest.mark.parametrize(
    ("mutate", "target", "expected"),
    [
        (lambda f: f, "missing", "Target column 'missing' is not in the data"),
        # A column that is all missing.
        (lambda f: f.assign(a=np.nan), "y", "Feature 'a' is empty (every value is missing); drop"),
        (
            lambda f: f.assign(a=[1.0] * 23 + [np.inf]),
            "y",
            "infinite value(s) (first at data row 24)",
        ),
        (lambda f: f.assign(y="only"), "y", "has only one class ('only')"),
        # A category (class) with a single row.
        (
            lambda f: f.assign(y=["x"] * 23 + ["z"]),
            "y",
            "Class 'z' of 'y' has only 1 row(s); every class needs at least 5",
        ),
        # A label with blanks.
        (
            lambda f: f.assign(y=[None] + ["x", "z"] * 11 + ["x"]),
            "y",
            "Target column 'y' has 1 missing value(s) (first at data row 1); drop those rows",
        ),
        # A target that is continuous.
        (
            lambda f: f.assign(y=np.linspace(0.5, 9.5, 24)),
            "y",
            "Target column 'y' looks continuous (24 distinct numbers, e.g. 0.5): cepage trains "
            "classifiers",
        ),
        # A data set that is too small.
        (lambda f: f.head(12), "y", "The data has only 12 row(s); at least 20 are needed"),
        (lambda f: f[["y"]], "y", "no feature column besides the target"),
        (
            lambda f: f.assign(id=range(1, 25)),
            "y",
            "Feature 'id' looks like a row number or an id",
        ),
        (
            lambda f: f.assign(name=[f"person {i}" for i in range(24)]),
            "y",
            "Feature 'name' has a different value on every row",
        ),
        (
            lambda f: f.assign(day=[f"2024-05-{i + 1:02d}" for i in range(24)]),
            "y",
            "Feature 'day' holds dates (e.g. '2024-05-01'); cepage does not expand dates",
        ),
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


def test_mixed_columns_are_read_by_kind_with_blanks() -> None:
    data = frame()
    data["colour"] = blanks(["red", "blue", "green"] * 6)
    data["member?"] = blanks(["yes", "no"] * 10)
    data["count"] = [1.0, 3.0] * 12
    dataset = validate(data, "y", name="t", source="t")
    assert dataset.kinds == {
        "a": "number",
        "b/c": "integer",
        "colour": "category",
        "member?": "boolean",
        "count": "integer",
    }
    features = dataset.features
    assert features["member?"].tolist()[:2] == [1.0, 0.0]
    assert features["member?"].isna().sum() == 4
    assert features["colour"].isna().sum() == 6
    assert features["colour"].dtype == object


def test_overrides_make_a_category_and_drop_a_column() -> None:
    data = frame().assign(id=range(1, 25))
    dataset = validate(data, "y", name="t", source="t", categorical=["b/c"], drop=["id"])
    assert dataset.kinds == {"a": "number", "b/c": "category"}
    assert set(dataset.features["b/c"]) <= {"0", "1", "2", "3", "4"}
    with pytest.raises(DataError, match="--drop 'nope' is not a column of the data"):
        validate(data, "y", name="t", source="t", drop=["nope"])
    with pytest.raises(DataError, match="--categorical 'y' names the target"):
        validate(data, "y", name="t", source="t", categorical=["y"])


def test_a_rare_category_is_a_note_not_an_error() -> None:
    data = frame().assign(plan=["basic", "premium"] * 11 + ["legacy", "basic"])
    dataset = validate(data, "y", name="t", source="t")
    assert dataset.kinds["plan"] == "category"
    assert len(dataset.notes) == 1
    assert "Feature 'plan': 'legacy' appear(s) on fewer than 5 rows" in dataset.notes[0]


def test_too_many_text_values_point_to_the_override() -> None:
    rows = 120
    data = pd.DataFrame(
        {
            "a": np.arange(rows) * 0.5,
            "city": [f"city {i % 60}" for i in range(rows)],
            "y": ["x", "z"] * (rows // 2),
        }
    )
    with pytest.raises(DataError, match=r"60 distinct text values.*--categorical 'city'"):
        validate(data, "y", name="t", source="t")
    dataset = validate(data, "y", name="t", source="t", categorical=["city"])
    assert dataset.kinds["city"] == "category"


def test_the_shipped_example_is_what_the_generator_makes(tmp_path: Path) -> None:
    from tests.support.mixed_data import CUSTOMERS_CSV, write_customers

    fresh = write_customers(tmp_path / "customers.csv")
    assert CUSTOMERS_CSV.read_text() == fresh.read_text()


def test_a_scored_csv_reads_blanks_as_training_does() -> None:
    """The UI's and the CLI's cell reading (contracts.features) and pandas' read_csv (training)
    agree on what a blank is: a penguin's "NA" sex is a blank in both."""
    from pandas._libs.parsers import STR_NA_VALUES

    from contracts.features import BLANK_MARKERS, parse_cell

    assert set(STR_NA_VALUES) == BLANK_MARKERS
    assert parse_cell({"name": "sex", "kind": "category"}, "NA") is None
    assert parse_cell({"name": "sex", "kind": "category"}, "male") == "male"


def test_a_code_written_1_0_is_the_training_category_1() -> None:
    from contracts.features import parse_cell

    pclass = {"name": "pclass", "kind": "category", "categories": ["1", "2", "3"]}
    assert parse_cell(pclass, "1.0") == "1"
    assert parse_cell(pclass, " 2 ") == "2"
    version = {"name": "v", "kind": "category", "categories": ["1.0", "2.5"]}
    assert parse_cell(version, "1.0") == "1.0"  # a text category stays as written
    assert parse_cell(pclass, "first") == "first"  # unseen: the service flags it
