"""The service's own Prometheus metrics (beside BentoML's native request metrics).

They are created in the worker (from the service's ``__init__``), never at import: BentoML sets
``PROMETHEUS_MULTIPROC_DIR`` only when a worker starts, and metrics made before that are invisible
with several workers (bentoml#5056).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONFIDENCE_BUCKETS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
# Rows per model call of a batched model (bento/batching.py): 1 at low load, growing with it.
BATCH_ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1000)


@dataclass(frozen=True)
class ServiceMetrics:
    """Handles on the metrics the service updates."""

    predictions: Any
    confidence: Any
    out_of_range: Any
    feedback: Any
    model_info: Any
    reloads: Any
    feature_bins: Any
    reference_ratio: Any
    missing: Any
    reference_missing: Any
    unseen: Any
    log_rows: Any
    batch_rows: Any


def create_metrics() -> ServiceMetrics:
    """Register the metrics in the current process (call once per worker)."""
    import prometheus_client as prom

    return ServiceMetrics(
        predictions=prom.Counter(
            "cepage_predictions_total",
            "Predictions made, by predicted class and model version.",
            ["model_version", "label"],
        ),
        confidence=prom.Histogram(
            "cepage_prediction_confidence",
            "Probability of the predicted class.",
            ["model_version"],
            buckets=CONFIDENCE_BUCKETS,
        ),
        out_of_range=prom.Counter(
            "cepage_out_of_range_total",
            "Feature values outside the training range, by feature.",
            ["feature"],
        ),
        feedback=prom.Counter(
            "cepage_feedback_total",
            "Feedback received, by model version and whether the prediction was correct.",
            ["model_version", "outcome"],
        ),
        model_info=prom.Gauge(
            "cepage_model_info",
            "1 for the model version a worker serves.",
            ["model_name", "model_version", "bento_model"],
            multiprocess_mode="livemax",
        ),
        reloads=prom.Counter(
            "cepage_model_reloads_total",
            "Times a worker swapped in a newer model from the store.",
        ),
        feature_bins=prom.Counter(
            "cepage_feature_bin_total",
            "Input values by feature and reference bin or category (drift: bento/drift.py).",
            ["model_version", "feature", "bin"],
        ),
        reference_ratio=prom.Gauge(
            "cepage_feature_reference_ratio",
            "Share of the training rows in each reference bin of each feature.",
            ["model_version", "feature", "bin"],
            multiprocess_mode="livemax",
        ),
        missing=prom.Counter(
            "cepage_feature_missing_total",
            "Records scored with this feature left empty (null or absent).",
            ["model_version", "feature"],
        ),
        reference_missing=prom.Gauge(
            "cepage_feature_reference_missing_ratio",
            "Share of the training rows where this feature was empty.",
            ["model_version", "feature"],
            multiprocess_mode="livemax",
        ),
        unseen=prom.Counter(
            "cepage_unseen_category_total",
            "Category values never seen in training (accepted and scored), by feature.",
            ["model_version", "feature"],
        ),
        batch_rows=prom.Histogram(
            "cepage_prediction_batch_rows",
            "Rows scored per model call of a batched model (requests merged while the previous "
            "call ran).",
            buckets=BATCH_ROWS_BUCKETS,
        ),
        log_rows=prom.Counter(
            "cepage_prediction_log_rows_total",
            "Rows of the production log (bento/production_log.py), by dataset and what became "
            "of them: written, dropped (queue full), failed (write error), sampled_out.",
            ["log", "outcome"],
        ),
    )
