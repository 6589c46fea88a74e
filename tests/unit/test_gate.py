"""The promotion gate's decisions."""

from __future__ import annotations

import pytest

from train.gate import decide


def test_first_model_is_promoted_when_above_the_floor() -> None:
    decision = decide(0.9, None, tolerance=0.01, floor=0.8)
    assert decision.promote
    assert "first model" in decision.reason


def test_first_model_below_the_floor_is_rejected() -> None:
    assert not decide(0.79, None, tolerance=0.01, floor=0.8).promote


@pytest.mark.parametrize(
    ("candidate", "champion", "promote"),
    [
        (0.95, 0.95, True),  # equal: promoted (a retrain on fresh data should go out)
        (0.945, 0.95, True),  # within tolerance
        (0.93, 0.95, False),  # worse than tolerance allows
        (0.99, 0.95, True),
    ],
)
def test_candidate_vs_champion(candidate: float, champion: float, promote: bool) -> None:
    decision = decide(candidate, champion, tolerance=0.01, floor=0.8)
    assert decision.promote is promote
    assert decision.champion_f1 == champion


def test_floor_applies_even_when_better_than_champion() -> None:
    decision = decide(0.75, 0.70, tolerance=0.01, floor=0.8)
    assert not decision.promote
    assert "below the floor" in decision.reason
