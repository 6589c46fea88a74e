"""Configuration of the model service, read from the environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts import env
from contracts.names import FEEDBACK_MAX_AGE_SECONDS, MODEL_NAME
from contracts.production_log import LogLocation, parse_location

# Request-duration buckets for the native BentoML histogram: a scikit-learn prediction takes
# ~0.3-3 ms, so the buckets are dense below 10 ms and still reach seconds for batches and stalls.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# CEPAGE_BATCHING: auto batches the models whose packaging measurement says it pays
# (bento/batching.py); on and off force it.
BATCHING_MODES = ("auto", "on", "off")

# Paths behind the request guard (size limit, content type, API key).
GUARDED_PATHS = ("/predict", "/feedback")
# What describes the model (features, ranges, categories, metrics; the model card holds all of
# them and the gate's figures): readable with the API key only, when one is set.
KEYED_READ_PATHS = ("/metadata", "/metadata/openapi.json", "/docs.json", "/model-card")


@dataclass(frozen=True)
class ProductionLogSettings:
    """Where and how the service keeps its predictions and feedback (bento/production_log.py).

    ``location`` None: the log is off.
    """

    location: LogLocation | None = None
    s3_endpoint: str | None = None  # scheme://host[:port]; None: AWS's own endpoint
    s3_region: str | None = None
    sample: float = 1.0
    exclude: frozenset[str] = frozenset()
    queue_rows: int = 10_000
    batch_rows: int = 1000
    flush_seconds: float = 10.0


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
    production_log: ProductionLogSettings = ProductionLogSettings()
    shadow: bool = False
    shadow_queue: int = 1000
    batching: str = "auto"


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
            "CEPAGE_FEEDBACK_MAX_AGE_SECONDS", FEEDBACK_MAX_AGE_SECONDS, environ, minimum=1
        ),
        # 1000 records of ~15 features is ~0.4 MB of JSON; 2 MiB leaves room, refuses abuse.
        max_body_bytes=env.integer("CEPAGE_MAX_BODY_BYTES", 2 * 1024 * 1024, environ, minimum=1),
        # Optional: when set, POST /predict and /feedback need it (bento/guard.py).
        api_key=read_api_key(environ),
        production_log=production_log_settings(environ),
        # The packaged @challenger answers each request too, off the response path
        # (bento/shadow.py); the queue bounds the requests waiting for it.
        shadow=_switch("CEPAGE_SHADOW", env.text("CEPAGE_SHADOW", "off", environ)),
        shadow_queue=env.integer("CEPAGE_SHADOW_QUEUE", 1000, environ, minimum=1),
        # auto: batch the models whose packaging measurement says it pays (bento/batching.py).
        batching=_choice(
            "CEPAGE_BATCHING", env.text("CEPAGE_BATCHING", "auto", environ), BATCHING_MODES
        ),
    )


def _choice(name: str, text: str, choices: tuple[str, ...]) -> str:
    """A setting that takes one of ``choices``."""
    value = text.strip().lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def _switch(name: str, text: str) -> bool:
    """An on/off setting's value: on, true, 1 or yes; off, false, 0, no or empty."""
    value = text.strip().lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no", ""):
        return False
    raise ValueError(f"{name} must be on or off, not {value!r}.")


def production_log_settings(environ: Mapping[str, str] | None = None) -> ProductionLogSettings:
    """The prediction log's settings: off unless ``CEPAGE_PREDICTION_LOG`` names a place.

    Off by default in the bare service, so an image run without a volume does not fill its
    root file system; ``cepage up`` sets it to ``$CEPAGE_HOME/production``.
    """
    location = parse_location(
        "CEPAGE_PREDICTION_LOG", env.text("CEPAGE_PREDICTION_LOG", "off", environ)
    )
    sample = env.number("CEPAGE_PREDICTION_LOG_SAMPLE", 1.0, environ, minimum=0.0)
    if sample > 1:
        raise ValueError(f"CEPAGE_PREDICTION_LOG_SAMPLE must be <= 1 (a share), not {sample}.")
    exclude = env.text("CEPAGE_PREDICTION_LOG_EXCLUDE", "", environ)
    return ProductionLogSettings(
        location=location,
        s3_endpoint=_endpoint(env.optional_text("CEPAGE_PREDICTION_LOG_S3_ENDPOINT", environ)),
        s3_region=env.optional_text("CEPAGE_PREDICTION_LOG_S3_REGION", environ),
        sample=sample,
        exclude=frozenset(name.strip() for name in exclude.split(",") if name.strip()),
        queue_rows=env.integer("CEPAGE_PREDICTION_LOG_QUEUE_ROWS", 10_000, environ, minimum=1),
        batch_rows=env.integer("CEPAGE_PREDICTION_LOG_BATCH_ROWS", 200, environ, minimum=1),
        flush_seconds=env.number(
            "CEPAGE_PREDICTION_LOG_FLUSH_SECONDS", 10.0, environ, positive=True
        ),
    )


def _endpoint(value: str | None) -> str | None:
    """An S3 endpoint as ``http(s)://host[:port]`` (no path)."""
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https") or not rest.strip("/") or "/" in rest.strip("/"):
        raise ValueError(
            f"CEPAGE_PREDICTION_LOG_S3_ENDPOINT must be http(s)://host[:port], not {value!r}."
        )
    return f"{scheme}://{rest.strip('/')}"


def workers(environ: Mapping[str, str] | None = None) -> int:
    """Worker processes for ``@bentoml.service`` (frozen into a Bento at build time)."""
    return env.integer("CEPAGE_WORKERS", 1, environ, minimum=1)


# Every URL matches: OpenTelemetry's ASGI middleware (BentoML adds it to every service, with no
# switch) then returns before it builds a span. It stalled the worker for spans nobody exports (no
# exporter, sample rate 0 unless BentoML's tracing configuration sets them): the figures are in
# docs/performance.md (issue 19).
TRACE_NOTHING = "."


def service_config(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """What ``@bentoml.service`` takes beyond cepage's fixed settings: the per-request
    instrumentation BentoML turns on by default and cepage turns off unless asked.

    ``CEPAGE_TRACING=on``: BentoML's tracing middleware as it ships (for an exporter configured in
    BentoML's own configuration). ``CEPAGE_ACCESS_LOG=on``: one ``bentoml.access`` log line per
    request; off, what it says (method, path, status, latency) is in the request metrics.
    """
    tracing = _switch("CEPAGE_TRACING", env.text("CEPAGE_TRACING", "off", environ))
    access = _switch("CEPAGE_ACCESS_LOG", env.text("CEPAGE_ACCESS_LOG", "off", environ))
    config: dict[str, object] = {"logging": {"access": {"enabled": access}}}
    if not tracing:
        config["tracing"] = {"excluded_urls": [TRACE_NOTHING]}
    return config
