"""bento.settings.service_config: the per-request instrumentation BentoML ships on, which cepage
turns off unless asked (docs/performance.md, issue 19)."""

from __future__ import annotations

import pytest

from bento.settings import TRACE_NOTHING, service_config


def test_tracing_and_the_access_log_are_off_by_default() -> None:
    assert service_config({}) == {
        "logging": {"access": {"enabled": False}},
        "tracing": {"excluded_urls": [TRACE_NOTHING]},
    }


def test_each_can_be_turned_back_on() -> None:
    assert service_config({"CEPAGE_TRACING": "on", "CEPAGE_ACCESS_LOG": "yes"}) == {
        "logging": {"access": {"enabled": True}},
    }


def test_a_wrong_value_names_the_setting() -> None:
    with pytest.raises(ValueError, match="CEPAGE_TRACING must be on or off, not 'maybe'"):
        service_config({"CEPAGE_TRACING": "maybe"})
