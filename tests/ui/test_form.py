"""From the feature schema to form inputs: labels, bounds, defaults, steps; and the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ui.form import input_spec, readable_label
from ui.responses import Feature, Metadata
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


def test_inputs_cover_the_training_range_with_a_margin(served: Metadata) -> None:
    for feature in served.schema.features:
        spec = input_spec(feature)
        assert spec.min_value < feature.min or spec.min_value == 0 <= feature.min
        assert spec.min_value >= 0 or feature.min < 0, "never-negative features stay >= 0"
        assert spec.max_value > feature.max
        assert spec.min_value <= spec.value <= spec.max_value
        assert abs(spec.value - feature.median) <= spec.step / 2 + 1e-9
        assert 0 < spec.step <= (feature.max - feature.min) / 10
        assert "_" not in spec.label
        if feature.is_integer:
            values = (spec.min_value, spec.max_value, spec.value, spec.step)
            assert all(isinstance(v, int) for v in values), (feature.name, values)
        else:
            assert all(isinstance(v, float) for v in (spec.min_value, spec.max_value, spec.value))


def test_an_integer_feature_with_a_half_median_defaults_to_an_integer() -> None:
    spec = input_spec(Feature("count", "integer", min=2.0, max=9.0, median=5.5))
    assert isinstance(spec.value, int)
    assert spec.value in (5, 6)
    assert spec.step == 1
    assert spec.format == "%d"


def test_a_negative_feature_extends_below_its_minimum() -> None:
    spec = input_spec(Feature("temperature", "number", min=-20.0, max=20.0, median=3.0))
    assert spec.min_value == pytest.approx(-40.0)
    assert spec.max_value == pytest.approx(40.0)
    assert spec.step == pytest.approx(0.1)
    assert spec.format == "%.1f"


def test_a_constant_feature_still_has_a_usable_input() -> None:
    spec = input_spec(Feature("constant", "number", min=3.0, max=3.0, median=3.0))
    assert spec.min_value < 3.0 < spec.max_value
    assert spec.value == 3.0
    assert spec.step > 0


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
