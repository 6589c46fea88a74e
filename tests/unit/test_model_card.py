"""contracts/model_card.py's Markdown: what a card says when something was not recorded, and
cells that would break a table."""

from __future__ import annotations

from contracts.model_card import INTENDED_USE_PATH, render_markdown


def test_a_card_with_nothing_recorded_says_so() -> None:
    text = render_markdown({"model": {"name": "m", "version": "3"}})
    assert text.startswith("# Model card: m version 3\n")
    assert f"Not written yet: edit `{INTENDED_USE_PATH}`." in text
    assert "- **Decision**: never judged by the gate" in text
    assert "(none recorded)" in text  # no features, no parameters
    assert "None" not in text  # a missing figure is a dash, not Python's None


def test_a_pipe_in_a_name_or_category_stays_inside_its_cell() -> None:
    card = {
        "model": {"name": "m", "version": "1"},
        "features": [
            {"name": "a|b", "kind": "category", "nullable": True, "missing_share": 0.25,
             "categories": ["x|y", "z"]},
            {"name": "n", "kind": "number", "min": 1.0, "median": 2.5, "max": 40000.0},
        ],
    }  # fmt: skip
    lines = render_markdown(card).splitlines()
    [row] = [line for line in lines if line.startswith("| `a")]
    assert row == "| `a\\|b` | category | x\\|y, z | 25.0% |"
    [number] = [line for line in lines if line.startswith("| `n`")]
    assert number == "| `n` | number | 1 to 40000 (median 2.5) | never |"
