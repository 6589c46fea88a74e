"""From the feature schema (versions 1 and 2) to form inputs: widgets by kind, labels, bounds,
defaults, steps, help; and the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.schemas import V2_BODY
from ui.form import (
    CheckboxSpec,
    ChoiceSpec,
    NumberSpec,
    default_value,
    describe_feature,
    describe_outside,
    input_spec,
    option_label,
    readable_label,
)
from ui.responses import Feature, Metadata, parse_metadata
from ui.settings import load_settings

pytestmark = pytest.mark.ui


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("od280/od315_of_diluted_wines", "Od280/od315 of diluted wines"),
        ("alcohol", "Alcohol"),
        ("pH_at__20C", "PH at 20C"),
        ("_x_", "X"),
    ],
)
def test_readable_label(name: str, label: str) -> None:
    assert readable_label(name) == label


def number(feature: Feature) -> NumberSpec:
    spec = input_spec(feature)
    assert isinstance(spec, NumberSpec), spec
    return spec


def test_inputs_cover_the_training_range_with_a_margin(served: Metadata) -> None:
    for feature in served.schema.features:
        spec = number(feature)
        assert feature.min is not None and feature.max is not None and feature.median is not None
        assert spec.value is not None, "a wine feature is never empty"
        assert spec.min_value < feature.min or spec.min_value == 0 <= feature.min
        assert spec.min_value >= 0 or feature.min < 0, "never-negative features stay >= 0"
        assert spec.max_value > feature.max
        assert spec.min_value <= spec.value <= spec.max_value
        assert abs(spec.value - feature.median) <= spec.step / 2 + 1e-9
        assert "_" not in spec.label
        if feature.is_integer:
            values = (spec.min_value, spec.max_value, spec.value, spec.step)
            assert all(isinstance(v, int) for v in values), (feature.name, values)
            assert spec.step == 1
        else:
            assert all(isinstance(v, float) for v in (spec.min_value, spec.max_value, spec.value))
            assert 0 < spec.step <= (feature.max - feature.min) / 10


def test_an_integer_feature_with_a_half_median_defaults_to_an_integer() -> None:
    spec = number(Feature("count", "integer", min=2.0, max=9.0, median=5.5))
    assert isinstance(spec.value, int)
    assert spec.value in (5, 6)
    assert spec.step == 1
    assert spec.format == "%d"


def test_a_negative_feature_extends_below_its_minimum() -> None:
    spec = number(Feature("temperature", "number", min=-20.0, max=20.0, median=3.0))
    assert spec.min_value == pytest.approx(-40.0)
    assert spec.max_value == pytest.approx(40.0)
    assert spec.step == pytest.approx(0.1)
    assert spec.format == "%.1f"


def test_a_constant_feature_still_has_a_usable_input() -> None:
    spec = number(Feature("constant", "number", min=3.0, max=3.0, median=3.0))
    assert spec.min_value < 3.0 < spec.max_value
    assert spec.value == 3.0
    assert spec.step > 0


def test_a_version_1_schema_reads_as_numbers_never_empty(v1_metadata: Metadata) -> None:
    alcohol, magnesium = v1_metadata.schema.features
    assert (alcohol.kind, magnesium.kind) == ("number", "integer")
    assert not alcohol.nullable and not magnesium.nullable
    assert (magnesium.min, magnesium.max, magnesium.median) == (70.0, 162.0, 98.0)
    assert magnesium.categories == () and magnesium.true_share is None
    assert number(magnesium).value == 98
    assert "Required" in number(alcohol).help


def test_a_version_2_schema_reads_every_kind(v2_metadata: Metadata) -> None:
    charges, calls, paperless, autopay, plan, region = v2_metadata.schema.features
    assert [f.kind for f in v2_metadata.schema.features] == [
        "number", "integer", "boolean", "boolean", "category", "category"
    ]  # fmt: skip
    assert charges.nullable and charges.missing_share == pytest.approx(0.0625)
    assert (charges.min, charges.max, charges.median) == (10.0, 150.0, 60.1)
    assert not calls.nullable and calls.is_integer
    assert paperless.nullable and paperless.true_share == pytest.approx(0.51)
    assert (paperless.min, paperless.max, paperless.median) == (None, None, None)
    assert autopay.true_share == pytest.approx(0.3)
    assert plan.categories == ("basic", "standard", "premium", "legacy")
    assert (plan.min, plan.max, plan.median) == (None, None, None)
    assert region.nullable and region.categories == ("north", "south")


def test_each_kind_gets_its_widget(v2_metadata: Metadata) -> None:
    charges, calls, paperless, autopay, plan, region = (
        input_spec(f) for f in v2_metadata.schema.features
    )
    # A number that may be empty starts empty (Streamlit lets a person clear only such a field).
    assert isinstance(charges, NumberSpec)
    assert charges.value is None and charges.placeholder
    assert charges.label == "Monthly charges ($)"
    assert "A number." in charges.help and "May be left empty" in charges.help
    assert "Training range 10 to 150" in charges.help
    # An integer steps by whole numbers from its median.
    assert isinstance(calls, NumberSpec)
    assert (calls.value, calls.step, calls.format) == (2, 1, "%d")
    assert all(isinstance(v, int) for v in (calls.min_value, calls.max_value))
    assert "A whole number." in calls.help and "Required" in calls.help
    # A yes/no that may be empty: yes / no / empty, the majority first chosen.
    assert isinstance(paperless, ChoiceSpec)
    assert paperless.options == (True, False, None)
    assert paperless.options[paperless.index] is True
    assert [option_label(o) for o in paperless.options] == ["yes", "no", "(empty)"]
    # A yes/no never empty: a checkbox, ticked when most training rows said yes.
    assert isinstance(autopay, CheckboxSpec)
    assert autopay.value is False
    assert "Yes or no." in autopay.help
    # A category: its training values, the most frequent chosen; empty only when nullable.
    assert isinstance(plan, ChoiceSpec)
    assert plan.options == ("basic", "standard", "premium", "legacy")
    assert plan.index == 0
    assert "A category." in plan.help
    assert isinstance(region, ChoiceSpec)
    assert region.options == ("north", "south", None)
    assert region.label == "Region"


def test_a_nullable_integer_starts_empty_and_steps_by_one() -> None:
    spec = number(Feature("visits", "integer", min=0, max=5000, median=40, nullable=True))
    assert spec.value is None
    assert spec.step == 1
    assert isinstance(spec.min_value, int) and isinstance(spec.max_value, int)


def test_the_model_description_says_kind_values_and_emptiness(v2_metadata: Metadata) -> None:
    lines = [describe_feature(f) for f in v2_metadata.schema.features]
    assert lines == [
        "Monthly charges ($): number, 10 to 150 (median 60.1); may be empty",
        "Support calls: whole number, 0 to 9 (median 2); required",
        "Paperless billing: yes/no (51% yes); may be empty",
        "Autopay: yes/no (30% yes); required",
        "Plan type: category: basic, standard, premium, legacy; required",
        "Region: category: north, south; may be empty",
    ]


def test_a_long_list_of_categories_is_cut_short() -> None:
    feature = Feature("postcode", "category", categories=tuple(f"{n:05}" for n in range(100)))
    line = describe_feature(feature)
    assert line.startswith("Postcode: category: 00000, 00001, ")
    assert line.endswith(", 00011 and 88 more; required")
    spec = input_spec(feature)
    assert isinstance(spec, ChoiceSpec) and len(spec.options) == 100, "the form offers them all"


def test_a_flagged_value_is_explained_by_its_kind(v2_metadata: Metadata) -> None:
    charges, _, _, _, plan, _ = v2_metadata.schema.features
    assert describe_outside(charges, 400.0) == (
        "Monthly charges ($) = 400 (training range 10 to 150)"
    )
    assert describe_outside(plan, "gold") == "Plan type = gold (not a value seen in training)"


def test_typical_values_by_kind(v2_metadata: Metadata) -> None:
    values = [default_value(f) for f in v2_metadata.schema.features]
    assert values == [60.1, 2, True, False, "basic", "north"]


@pytest.mark.parametrize(
    "feature",
    [
        {"name": "x", "kind": "number", "min": 1, "max": 2},  # no median
        {"name": "x", "kind": "category", "categories": []},
        {"name": "x", "kind": "colour"},
        {"name": "x", "dtype": "integer", "min": "low", "max": 2, "median": 1},
    ],
)
def test_a_feature_without_what_its_kind_needs_is_refused(feature: dict[str, object]) -> None:
    body = {**V2_BODY, "feature_schema": {**V2_BODY["feature_schema"], "features": [feature]}}
    with pytest.raises((KeyError, ValueError)):
        parse_metadata(body)


def test_settings_read_the_api_url_without_a_default() -> None:
    assert load_settings({}).api_url is None
    assert load_settings({"CEPAGE_API_URL": "  "}).api_url is None
    assert load_settings({"CEPAGE_API_URL": "http://h:1"}).api_url == "http://h:1"
    assert load_settings({"CEPAGE_API_TIMEOUT_SECONDS": "2.5"}).timeout_seconds == 2.5


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_settings_refuse_a_bad_timeout(value: str) -> None:
    with pytest.raises(ValueError, match="CEPAGE_API_TIMEOUT_SECONDS"):
        load_settings({"CEPAGE_API_TIMEOUT_SECONDS": value})


def test_settings_read_the_api_key_from_a_file_or_the_environment(tmp_path: Path) -> None:
    assert load_settings({}).api_key is None
    assert load_settings({"CEPAGE_API_KEY": " k1 "}).api_key == "k1"
    secret = tmp_path / "api_key"
    secret.write_text("k2\n")
    both = {"CEPAGE_API_KEY_FILE": str(secret), "CEPAGE_API_KEY": "k1"}
    assert load_settings(both).api_key == "k2"
    with pytest.raises(ValueError, match="CEPAGE_API_KEY_FILE"):
        load_settings({"CEPAGE_API_KEY_FILE": str(tmp_path / "missing")})
