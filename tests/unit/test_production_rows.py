"""Reading the production log back (train/production.py) and the gate's production check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts import production_log as names
from contracts.production_log import LogLocation, partition_dir
from train.gate import GateDecision, decide_on_production
from train.production import REASON, ROW_ID, read_labelled, summarize

FEATURES: list[dict[str, Any]] = [
    {"name": "alcohol", "kind": "number"},
    {"name": "region", "kind": "category", "nullable": True},
]
DAY = "2026-11-30"
T0 = 1_796_000_000.0


def write(root: Path, folder: str, columns: dict[str, Any], stem: str) -> None:
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), target / f"part-1-{stem}.parquet")


def predictions(
    root: Path, version: str, ids: list[str], inputs: list[dict[str, Any]], stem: str
) -> None:
    n = len(ids)
    write(
        root,
        partition_dir(names.PREDICTIONS, DAY, version),
        {
            names.PREDICTION_ID: ids,
            names.TIME: pa.array([int(T0 * 1000) + i for i in range(n)], pa.timestamp("ms", "UTC")),
            names.MODEL_NAME: ["m"] * n,
            names.MODEL_VERSION: [version] * n,
            names.LABEL: ["a"] * n,
            names.PROBABILITIES: pa.array([[("a", 1.0)]] * n, pa.map_(pa.string(), pa.float64())),
            names.OUT_OF_RANGE: pa.array([[]] * n, pa.list_(pa.string())),
            names.INPUTS: inputs,
        },
        stem,
    )


def feedback(root: Path, rows: list[tuple[str, float, str, str, str]], stem: str) -> None:
    write(
        root,
        partition_dir(names.FEEDBACK, DAY),
        {
            names.PREDICTION_ID: [r[0] for r in rows],
            names.TIME: pa.array([int(r[1] * 1000) for r in rows], pa.timestamp("ms", "UTC")),
            names.LABEL: [r[2] for r in rows],
            names.PREDICTED: [r[3] for r in rows],
            names.MODEL_VERSION: [r[4] for r in rows],
            names.WHO: ["anonymous"] * len(rows),
        },
        stem,
    )


@pytest.fixture
def log(tmp_path: Path) -> LogLocation:
    predictions(
        tmp_path, "1", ["p1", "p2", "p3", "p4"],
        [{"alcohol": 13.0, "region": "east"}, {"alcohol": None, "region": "west"},
         {"alcohol": 12.0, "region": None}, {"alcohol": 14.0, "region": "east"}],
        "a",
    )  # fmt: skip
    # Another version served other features: its rows cannot train this model.
    predictions(tmp_path, "2", ["q1"], [{"colour": 1.0}], "b")
    feedback(
        tmp_path,
        [
            ("p1", T0 + 10, "a", "a", "1"),
            ("p1", T0 + 20, "b", "a", "1"),  # a second label from another worker: the later wins
            ("p2", T0 + 11, "b", "a", "1"),  # alcohol missing, not nullable
            ("p3", T0 + 12, "a", "a", "1"),  # region missing, nullable: kept
            ("q1", T0 + 13, "a", "a", "2"),
            ("zz", T0 + 14, "a", "a", "1"),  # no such prediction (kept beyond the window)
        ],
        "c",
    )
    # A writer's file in progress is not part of the dataset.
    (tmp_path / partition_dir(names.FEEDBACK, DAY) / ".part-9.parquet.tmp").write_bytes(b"half")
    return LogLocation("file", str(tmp_path))


def test_labels_join_their_predictions_latest_label_wins(log: LogLocation) -> None:
    labelled = read_labelled(log, FEATURES, "cultivar")
    assert labelled.predictions == 5 and labelled.feedback == 6
    assert labelled.duplicate_feedback == 1 and labelled.unmatched_feedback == 1
    rows = labelled.rows
    assert list(rows[ROW_ID]) == ["p3", "p1"]  # oldest label first
    assert dict(zip(rows[ROW_ID], rows["cultivar"], strict=True)) == {"p1": "b", "p3": "a"}
    assert rows.loc[rows[ROW_ID] == "p3", "region"].isna().all()


def test_rows_that_cannot_be_training_data_are_reported_with_why(log: LogLocation) -> None:
    rejected = read_labelled(log, FEATURES, "cultivar").rejected
    reasons = dict(zip(rejected[ROW_ID], rejected[REASON], strict=True))
    assert set(reasons) == {"p2", "q1"}
    assert reasons["p2"].startswith("alcohol is missing (not nullable)")
    assert "alcohol" in reasons["q1"]


def test_only_trusted_callers_labels_become_training_rows(log: LogLocation) -> None:
    labelled = read_labelled(log, FEATURES, "cultivar", trusted=["key:0123456789ab"])
    assert labelled.rows.empty
    reasons = set(labelled.rejected[REASON])
    assert "labelled by anonymous, not a trusted source (CEPAGE_DATASET_FEEDBACK_FROM)" in reasons


def test_a_category_that_reads_as_a_blank_is_not_kept_as_one(tmp_path: Path) -> None:
    predictions(
        tmp_path, "1", ["n1", "n2"],
        [{"alcohol": 13.0, "region": "NA"}, {"alcohol": 12.0, "region": "north"}], "a",
    )  # fmt: skip
    feedback(tmp_path, [("n1", T0 + 1, "a", "a", "1"), ("n2", T0 + 2, "a", "a", "1")], "b")
    labelled = read_labelled(LogLocation("file", str(tmp_path)), FEATURES, "cultivar")
    assert list(labelled.rows[ROW_ID]) == ["n2"]
    assert "reads as a blank" in labelled.rejected[REASON].iloc[0]


def test_a_label_in_the_window_finds_its_older_prediction(tmp_path: Path) -> None:
    old_day = "2026-10-01"
    target = tmp_path / partition_dir(names.PREDICTIONS, old_day, "1")
    predictions(tmp_path, "1", ["o1"], [{"alcohol": 13.0, "region": "east"}], "a")
    target.parent.mkdir(parents=True)
    (tmp_path / partition_dir(names.PREDICTIONS, DAY, "1")).rename(target)
    feedback(tmp_path, [("o1", T0 + 1, "a", "a", "1")], "b")
    location = LogLocation("file", str(tmp_path))
    windowed = read_labelled(
        location, FEATURES, "cultivar", since_day="2026-11-29", predictions_since_day="2026-09-30"
    )
    assert list(windowed.rows[ROW_ID]) == ["o1"]
    too_short = read_labelled(
        location, FEATURES, "cultivar", since_day="2026-11-29", predictions_since_day="2026-11-29"
    )
    assert too_short.rows.empty and too_short.unmatched_feedback == 1


def test_an_empty_or_missing_log_gives_no_rows(tmp_path: Path) -> None:
    labelled = read_labelled(LogLocation("file", str(tmp_path / "none")), FEATURES, "cultivar")
    assert labelled.rows.empty and labelled.predictions == 0


def test_the_window_skips_older_partitions(log: LogLocation) -> None:
    later = read_labelled(log, FEATURES, "cultivar", since_day="2026-12-01")
    assert later.feedback == 0 and later.rows.empty


def test_summary_per_version(log: LogLocation) -> None:
    by_version = {s.model_version: s for s in summarize(log)}
    assert by_version["1"].predictions == 4 and by_version["1"].labelled == 3
    assert by_version["1"].correct == 1  # p1's final label b != a; p2 wrong; p3 right
    assert by_version["2"].accuracy == 1.0
    assert by_version["1"].labelled_share == 0.75


def decision(promote: bool = True) -> GateDecision:
    return GateDecision(promote, "held-out rows fine", 0.9, 0.9)


@pytest.mark.parametrize(
    ("candidate", "champion", "promote"),
    [(0.90, 0.90, True), (0.895, 0.90, True), (0.85, 0.90, False), (0.99, 0.50, True)],
)
def test_production_check(candidate: float, champion: float, promote: bool) -> None:
    judged = decide_on_production(decision(), candidate, champion, 40, tolerance=0.01)
    assert judged.promote is promote
    assert judged.production_rows == 40
    assert (judged.candidate_production_f1, judged.champion_production_f1) == (candidate, champion)
    assert "40 recent labelled production rows" in judged.reason


def test_production_check_never_promotes_a_rejected_candidate() -> None:
    judged = decide_on_production(decision(promote=False), 1.0, 0.1, 40, tolerance=0.0)
    assert not judged.promote and judged.reason == "held-out rows fine"


def test_production_check_needs_both_scores() -> None:
    # The champion cannot read these rows (other features): the usual decision stands.
    judged = decide_on_production(decision(), 0.5, None, 40, tolerance=0.0)
    assert judged.promote and judged.candidate_production_f1 == 0.5


def test_a_production_set_is_split_so_the_champion_never_held_out_what_it_trained_on() -> None:
    """The original rows split exactly as the champion's were; each production row on the same
    side whatever else the set holds (no row the champion trained on reaches the candidate's
    held-out rows)."""
    import pandas as pd

    from train.data import load_dataset
    from train.training import split

    wine = load_dataset(None, None)
    n = len(wine.features)
    champion = split(wine, 42, 0.25)

    production = wine.features.sample(80, random_state=1).reset_index(drop=True) * 1.01
    production_labels = wine.target.sample(80, random_state=1).reset_index(drop=True)

    def with_production(rows: int) -> Any:
        # The first `rows` production rows: the larger set holds the smaller one's, and more.
        extra, labels = production.iloc[:rows], production_labels.iloc[:rows]
        combined = type(wine)(
            pd.concat([wine.features, extra], ignore_index=True),
            pd.concat([wine.target, labels], ignore_index=True),
            wine.target_name, wine.name, wine.source,
        )  # fmt: skip
        return split(combined, 42, 0.25, original_rows=n)

    small, large = with_production(40), with_production(80)
    original_held = set(champion[1].index)
    assert set(small[1].index[small[1].index < n]) == original_held
    assert set(large[1].index[large[1].index < n]) == original_held
    # The 40 first production rows are the same rows in both sets: each kept its side.
    first = range(n, n + 40)
    assert {i for i in small[1].index if i in first} == {i for i in large[1].index if i in first}
    held = len([i for i in large[1].index if i >= n])
    assert 8 <= held <= 35  # about a quarter of the 80
