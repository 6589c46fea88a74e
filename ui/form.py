"""Turning the feature schema into form inputs: labels, bounds, defaults and steps.

Pure functions of the schema (no Streamlit), so the form follows whatever model is served.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ui.responses import Feature

# The service accepts values outside the training range (and flags them), so the inputs reach
# this share of the range beyond it on each side; a feature never negative in training stays >= 0.
RANGE_MARGIN = 0.5


@dataclass(frozen=True)
class InputSpec:
    """Arguments of one ``st.number_input``: all ints for an integer feature, else all floats."""

    label: str
    min_value: float | int
    max_value: float | int
    value: float | int
    step: float | int
    format: str
    help: str


def readable_label(name: str) -> str:
    """A column name as a person would write it: ``mean_cell_radius`` -> ``Mean cell radius``."""
    words = " ".join(name.replace("_", " ").split())
    if not words:
        return name
    return words[0].upper() + words[1:]


def input_spec(feature: Feature) -> InputSpec:
    """Bounds (the training range plus a margin), default (the median) and step of a feature."""
    span = feature.max - feature.min
    margin = RANGE_MARGIN * span if span > 0 else max(1.0, abs(feature.max))
    low = feature.min - margin
    if feature.min >= 0:
        low = max(0.0, low)
    high = feature.max + margin
    step = _nice_step(span)
    help_text = (
        f"Training range {_fmt(feature.min)} to {_fmt(feature.max)}, median "
        f"{_fmt(feature.median)} (column `{feature.name}`). Values outside the range are "
        "accepted, but the prediction is less reliable."
    )
    label = readable_label(feature.name)
    if feature.is_integer:
        int_step = max(1, round(step))
        return InputSpec(
            label=label,
            min_value=math.floor(low),
            max_value=math.ceil(high),
            value=round(feature.median),
            step=int_step,
            format="%d",
            help=help_text,
        )
    decimals = max(0, -math.floor(math.log10(step)))
    return InputSpec(
        label=label,
        min_value=_round_down(low, decimals),
        max_value=_round_up(high, decimals),
        value=round(feature.median, decimals),
        step=step,
        format=f"%.{decimals}f",
        help=help_text,
    )


def _nice_step(span: float) -> float:
    """A power of ten giving about a hundred steps across the training range."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    return float(10 ** math.floor(math.log10(span / 100)))


def _round_down(value: float, decimals: int) -> float:
    factor = 10**decimals
    return math.floor(value * factor) / factor


def _round_up(value: float, decimals: int) -> float:
    factor = 10**decimals
    return math.ceil(value * factor) / factor


def _fmt(value: float) -> str:
    return f"{value:.6g}"
