"""The UI's reading of the service's counters (ui/client.py: parse_counts)."""

from __future__ import annotations

from ui.client import parse_counts

METRICS = """\
# HELP cepage_predictions_total Predictions served, by model version and predicted label
# TYPE cepage_predictions_total counter
cepage_predictions_total{label="Barbera",model_version="1"} 6.0
cepage_predictions_total{label="Nebbiolo",model_version="1"} 4.0
cepage_predictions_total{label="Nebbiolo",model_version="10"} 2.0
cepage_predictions_created{label="Barbera",model_version="1"} 1.79e+09
cepage_feedback_total{model_version="1",outcome="correct"} 3.0
cepage_feedback_total{model_version="1",outcome="incorrect"} 1.0
cepage_feedback_total{model_version="2",outcome="correct"} 0.0
bentoml_service_request_total{endpoint="/predict"} 12.0
"""


def test_counts_per_version_in_version_order() -> None:
    counts = parse_counts(METRICS)
    assert [c.model_version for c in counts] == ["1", "10"]  # version 2: nothing counted, not shown
    one, ten = counts
    assert (one.predictions, one.labelled, one.correct) == (10, 4, 3)
    assert one.labelled_share == 0.4 and one.accuracy == 0.75
    assert (ten.predictions, ten.labelled, ten.accuracy) == (2, 0, None)


def test_nothing_counted_yet() -> None:
    assert parse_counts("# only comments\n") == []
