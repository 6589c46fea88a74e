"""Configuration of the model service, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The registered model's name in MLflow is also its name in the BentoML store.
# This is its one home: the training side imports it from here.
DEFAULT_MODEL_NAME = "cepage-classifier"

# Request-duration buckets for the native BentoML histogram: a scikit-learn prediction takes
# ~0.3-3 ms, so the buckets are dense below 10 ms and still reach seconds for batches and stalls.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(frozen=True)
class ServiceSettings:
    """Runtime settings of the service."""

    model_name: str
    max_records: int
    reload_seconds: float
    feedback_key: str | None
    feedback_max_age_seconds: int
    max_body_bytes: int
    api_key: str | None = None


def read_api_key(environ: Mapping[str, str]) -> str | None:
    """The API key from ``CEPAGE_API_KEY_FILE`` (a Docker secret) or ``CEPAGE_API_KEY``.

    None when neither is set: ``/predict`` and ``/feedback`` are then open.

    Raises:
        ValueError: the file cannot be read or is empty (refuse to start rather than run open).
    """
    path = environ.get("CEPAGE_API_KEY_FILE", "").strip()
    if path:
        try:
            key = Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"CEPAGE_API_KEY_FILE={path} cannot be read: {exc.strerror}") from exc
        if not key:
            raise ValueError(f"CEPAGE_API_KEY_FILE={path} is empty")
        return key
    return environ.get("CEPAGE_API_KEY", "").strip() or None


def load_settings() -> ServiceSettings:
    """Read the service settings from the environment."""
    return ServiceSettings(
        model_name=os.environ.get("CEPAGE_MODEL_NAME", DEFAULT_MODEL_NAME),
        max_records=int(os.environ.get("CEPAGE_MAX_RECORDS", "1000")),
        # > 0: every worker checks the BentoML store this often and swaps in a newer model
        # without a restart (the local stack uses it; an image carries one model and keeps 0).
        reload_seconds=float(os.environ.get("CEPAGE_MODEL_RELOAD_SECONDS", "0")),
        # Signs prediction ids so feedback can be checked without shared state between
        # workers or replicas. Unset: derived from the model (fine locally, forgeable).
        feedback_key=os.environ.get("CEPAGE_FEEDBACK_KEY") or None,
        feedback_max_age_seconds=int(os.environ.get("CEPAGE_FEEDBACK_MAX_AGE_SECONDS", "2592000")),
        # 1000 records of ~15 features is ~0.4 MB of JSON; 2 MiB leaves room, refuses abuse.
        max_body_bytes=int(os.environ.get("CEPAGE_MAX_BODY_BYTES", str(2 * 1024 * 1024))),
        # Optional: when set, POST /predict and /feedback need it (bento/guard.py).
        api_key=read_api_key(os.environ),
    )


def workers() -> int:
    """Worker processes for ``@bentoml.service`` (frozen into a Bento at build time)."""
    return int(os.environ.get("CEPAGE_WORKERS", "1"))
