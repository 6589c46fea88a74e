"""Configuration of the model service, read from the environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts import env
from contracts.names import MODEL_NAME

# Request-duration buckets for the native BentoML histogram: a scikit-learn prediction takes
# ~0.3-3 ms, so the buckets are dense below 10 ms and still reach seconds for batches and stalls.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# Paths behind the request guard (size limit, content type, API key).
GUARDED_PATHS = ("/predict", "/feedback")


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


def read_api_key(environ: Mapping[str, str] | None = None) -> str | None:
    """The API key from ``CEPAGE_API_KEY_FILE`` (a Docker secret) or ``CEPAGE_API_KEY``.

    None when neither is set: ``/predict`` and ``/feedback`` are then open.

    Raises:
        ValueError: the file cannot be read or is empty (refuse to start rather than run open).
    """
    return env.secret("CEPAGE_API_KEY", environ)


def model_name(environ: Mapping[str, str] | None = None) -> str:
    """The name of the served model in the BentoML store."""
    return env.text("CEPAGE_MODEL_NAME", MODEL_NAME, environ)


def load_settings(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """Read the service settings from ``environ`` (default: the process environment)."""
    return ServiceSettings(
        model_name=model_name(environ),
        max_records=env.integer("CEPAGE_MAX_RECORDS", 1000, environ, minimum=1),
        # > 0: every worker checks the BentoML store this often and swaps in a newer model
        # without a restart (the local stack uses it; an image carries one model and keeps 0).
        reload_seconds=env.number("CEPAGE_MODEL_RELOAD_SECONDS", 0.0, environ),
        # Signs prediction ids so feedback can be checked without shared state between
        # workers or replicas. Unset: derived from the model (fine locally, forgeable).
        feedback_key=env.optional_text("CEPAGE_FEEDBACK_KEY", environ),
        feedback_max_age_seconds=env.integer(
            "CEPAGE_FEEDBACK_MAX_AGE_SECONDS", 30 * 24 * 3600, environ, minimum=1
        ),
        # 1000 records of ~15 features is ~0.4 MB of JSON; 2 MiB leaves room, refuses abuse.
        max_body_bytes=env.integer("CEPAGE_MAX_BODY_BYTES", 2 * 1024 * 1024, environ, minimum=1),
        # Optional: when set, POST /predict and /feedback need it (bento/guard.py).
        api_key=read_api_key(environ),
    )


def workers(environ: Mapping[str, str] | None = None) -> int:
    """Worker processes for ``@bentoml.service`` (frozen into a Bento at build time)."""
    return env.integer("CEPAGE_WORKERS", 1, environ, minimum=1)
