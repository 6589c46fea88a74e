"""Turning the feature schema into form inputs: labels, widgets, bounds, defaults, steps, help.

Pure functions of the schema (no Streamlit), so the form follows whatever model is served. Each
feature gets the widget its kind calls for (:func:`input_spec`):

- number / integer: a number input over the training range plus a margin (an integer one steps
  by 1); a nullable one starts empty, since Streamlit lets a person clear only such a field;
- boolean: a checkbox, or, when the feature may be empty, a choice of yes / no / empty;
- category: a choice among the training values (most frequent first), plus empty when nullable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from contracts import features as kinds
from ui.responses import Feature, Value

# The service accepts values outside the training range (and flags them), so the inputs reach
# this share of the range beyond it on each side; a feature never negative in training stays >= 0.
RANGE_MARGIN = 0.5
EMPTY_LABEL = "(empty)"
EMPTY_PLACEHOLDER = "empty (unknown)"
# A description lists this many of a category's values (a postcode column can have thousands).
CATEGORIES_LISTED = 12


@dataclass(frozen=True)
class NumberSpec:
    """Arguments of one ``st.number_input``: all ints for an integer feature, else all floats.

    ``value`` is None for a feature that may be empty: the field starts empty and can be cleared.
    """

    label: str
    min_value: float | int
    max_value: float | int
    value: float | int | None
    step: float | int
    format: str
    help: str
    placeholder: str | None = None


@dataclass(frozen=True)
class ChoiceSpec:
    """Arguments of one ``st.selectbox``: the options are the values the record gets."""

    label: str
    options: tuple[Value, ...]
    index: int
    help: str


@dataclass(frozen=True)
class CheckboxSpec:
    """Arguments of one ``st.checkbox``, for a yes/no feature that is never empty."""

    label: str
    value: bool
    help: str


InputSpec = NumberSpec | ChoiceSpec | CheckboxSpec


def readable_label(name: str) -> str:
    """A column name as a person would write it: ``mean_cell_radius`` -> ``Mean cell radius``."""
    words = " ".join(name.replace("_", " ").split())
    if not words:
        return name
    return words[0].upper() + words[1:]


def input_spec(feature: Feature) -> InputSpec:
    """The widget of a feature, by its kind."""
    if feature.kind == kinds.CATEGORY:
        return _category_spec(feature)
    if feature.kind == kinds.BOOLEAN:
        return _boolean_spec(feature)
    return number_spec(feature)


def option_label(value: Value) -> str:
    """How a choice is shown: yes/no for booleans, the empty choice by name, text as is."""
    if value is None:
        return EMPTY_LABEL
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def number_spec(feature: Feature) -> NumberSpec:
    """Bounds (the training range plus a margin), default (the median, or empty when the feature
    may be empty) and step of a number or integer feature."""
    low_seen, high_seen, median = training_range(feature)
    span = high_seen - low_seen
    margin = RANGE_MARGIN * span if span > 0 else max(1.0, abs(high_seen))
    low = low_seen - margin
    if low_seen >= 0:
        low = max(0.0, low)
    high = high_seen + margin
    label = readable_label(feature.name)
    help_text = describe_kind(feature) + " " + _range_help(feature)
    placeholder = EMPTY_PLACEHOLDER if feature.nullable else None
    if feature.is_integer:
        return NumberSpec(
            label=label,
            min_value=math.floor(low),
            max_value=math.ceil(high),
            value=None if feature.nullable else round(median),
            step=1,
            format="%d",
            help=help_text,
            placeholder=placeholder,
        )
    step = _nice_step(span)
    decimals = max(0, -math.floor(math.log10(step)))
    return NumberSpec(
        label=label,
        min_value=_round_down(low, decimals),
        max_value=_round_up(high, decimals),
        value=None if feature.nullable else round(median, decimals),
        step=step,
        format=f"%.{decimals}f",
        help=help_text,
        placeholder=placeholder,
    )


def default_value(feature: Feature) -> Value:
    """A typical value of the feature: the median, the most frequent category, the majority
    yes/no (what the batch template fills in; None only when nothing is known)."""
    if feature.is_numeric:
        if feature.median is None:
            return None
        return round(feature.median) if feature.is_integer else feature.median
    if feature.kind == kinds.CATEGORY:
        return feature.categories[0] if feature.categories else None
    if feature.kind == kinds.BOOLEAN:
        return feature.true_share is not None and feature.true_share >= 0.5
    return None


def describe_kind(feature: Feature) -> str:
    """The kind in words, and whether the feature may be empty: the start of every help text."""
    what = {
        kinds.NUMBER: "A number.",
        kinds.INTEGER: "A whole number.",
        kinds.BOOLEAN: "Yes or no.",
        kinds.CATEGORY: "A category.",
    }.get(feature.kind, f"A {feature.kind}.")
    if feature.nullable:
        return f"{what} May be left empty ({feature.missing_share:.0%} of the training rows were)."
    return f"{what} Required."


def describe_feature(feature: Feature) -> str:
    """One line for the model's description: kind, range or values, and whether it may be empty."""
    if feature.is_numeric:
        low, high, median = training_range(feature)
        which = "whole number" if feature.is_integer else "number"
        detail = f"{which}, {_fmt(low)} to {_fmt(high)} (median {_fmt(median)})"
    elif feature.kind == kinds.CATEGORY:
        shown = ", ".join(feature.categories[:CATEGORIES_LISTED])
        more = len(feature.categories) - CATEGORIES_LISTED
        detail = f"category: {shown}" + (f" and {more} more" if more > 0 else "")
    elif feature.kind == kinds.BOOLEAN:
        detail = "yes/no"
        if feature.true_share is not None:
            detail += f" ({feature.true_share:.0%} yes)"
    else:
        detail = feature.kind
    empty = "may be empty" if feature.nullable else "required"
    return f"{readable_label(feature.name)}: {detail}; {empty}"


def describe_outside(feature: Feature, value: Value) -> str:
    """Why a value was flagged by the service: outside the training range, or an unseen category."""
    label = readable_label(feature.name)
    if feature.is_numeric and isinstance(value, int | float) and not isinstance(value, bool):
        low, high, _ = training_range(feature)
        return f"{label} = {value:g} (training range {_fmt(low)} to {_fmt(high)})"
    if feature.kind == kinds.CATEGORY:
        return f"{label} = {option_label(value)} (not a value seen in training)"
    return f"{label} = {option_label(value)}"


def _category_spec(feature: Feature) -> ChoiceSpec:
    options: tuple[Value, ...] = feature.categories
    if feature.nullable:
        options = (*options, None)
    help_text = (
        f"{describe_kind(feature)} One of the values seen in training, most frequent first. "
        f"Column `{feature.name}`."
    )
    # The most frequent category first: the schema lists them in that order.
    return ChoiceSpec(readable_label(feature.name), options, index=0, help=help_text)


def _boolean_spec(feature: Feature) -> ChoiceSpec | CheckboxSpec:
    majority = bool(default_value(feature))
    label = readable_label(feature.name)
    share = "" if feature.true_share is None else f" {feature.true_share:.0%} yes in training."
    help_text = f"{describe_kind(feature)}{share} Column `{feature.name}`."
    if not feature.nullable:
        return CheckboxSpec(label, value=majority, help=help_text)
    options: tuple[Value, ...] = (True, False, None)
    return ChoiceSpec(label, options, index=options.index(majority), help=help_text)


def _range_help(feature: Feature) -> str:
    low, high, median = training_range(feature)
    return (
        f"Training range {_fmt(low)} to {_fmt(high)}, median {_fmt(median)} "
        f"(column `{feature.name}`). Values outside the range are accepted, but the prediction "
        "is less reliable."
    )


def training_range(feature: Feature) -> tuple[float, float, float]:
    """The training minimum, maximum and median of a number or integer feature."""
    if feature.min is None or feature.max is None or feature.median is None:
        raise ValueError(f"the feature {feature.name!r} has no training range")
    return feature.min, feature.max, feature.median


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
