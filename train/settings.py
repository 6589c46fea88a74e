"""Configuration of the training side, read from the environment in one place.

Every value has a safe local default that keeps all state under ``.cepage/`` (gitignored).
The tools' own variables keep their names (``MLFLOW_TRACKING_URI``, ``BENTOML_HOME``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts import env
from contracts.names import FEEDBACK_MAX_AGE_SECONDS, MODEL_NAME


@dataclass(frozen=True)
class Settings:
    """Everything the CLI needs to find the stores and apply the gate."""

    home: Path
    tracking_uri: str
    artifact_root: Path
    bentoml_home: Path
    model_name: str
    experiment: str
    gate_tolerance: float
    gate_floor: float
    host: str
    mlflow_port: int
    api_port: int
    ui_port: int
    prometheus_port: int
    alertmanager_port: int
    node_exporter_port: int
    prediction_log: str = "off"
    """Where the service keeps its prediction and feedback log (a directory or s3://bucket/prefix;
    ``off``): ``cepage dataset`` reads it. Locally ``$CEPAGE_HOME/production``, where `cepage up`
    has the service write it."""
    gate_min_production_rows: int = 30
    """The fewest labelled production rows held out for the gate's production check."""
    dataset_feedback_from: tuple[str, ...] = ()
    """Only labels from these callers (the feedback log's ``who``: ``key:<fingerprint>`` or
    ``anonymous``) become training rows; empty: every caller."""
    feedback_max_age: int = FEEDBACK_MAX_AGE_SECONDS
    """How long after a prediction its feedback is accepted (the service's setting of the same
    name): how far back ``cepage dataset --since-days`` looks for the labels' predictions."""
    gate_production_tolerance: float | None = None
    """Macro-F1 the candidate may lose vs the champion on production rows (None: gate_tolerance)."""
    api_key: str | None = None
    """The service's API key, sent by `cepage predict` (CEPAGE_API_KEY_FILE or CEPAGE_API_KEY)."""
    shadow_min_predictions: int = 200
    """`cepage promote --shadow`: the fewest records the shadow challenger must have answered."""
    shadow_min_feedback: int = 50
    """... and the fewest of them with a label, on which both models' accuracies are compared."""

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def uses_local_store(self) -> bool:
        """True when MLflow is the embedded SQLite store (no server)."""
        return self.tracking_uri.startswith("sqlite:")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (default: the process environment).

    Call it, never import a module-level copy.
    """
    home = Path(env.text("CEPAGE_HOME", ".cepage", environ)).resolve()
    return Settings(
        home=home,
        tracking_uri=env.text("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}", environ),
        artifact_root=home / "mlartifacts",
        bentoml_home=Path(env.text("BENTOML_HOME", str(home / "bentoml"), environ)).resolve(),
        model_name=env.text("CEPAGE_MODEL_NAME", MODEL_NAME, environ),
        experiment=env.text("CEPAGE_EXPERIMENT", "cepage", environ),
        # The gate: a candidate must reach the floor and lose at most `tolerance` macro-F1
        # against the champion on the same held-out rows. Documented in docs/cli.md.
        # A negative tolerance asks the candidate to beat the champion by that margin.
        gate_tolerance=env.number("CEPAGE_GATE_TOLERANCE", 0.01, environ),
        gate_floor=env.number("CEPAGE_GATE_FLOOR", 0.80, environ, minimum=0),
        host=env.text("CEPAGE_HOST", "127.0.0.1", environ),
        mlflow_port=env.port("CEPAGE_MLFLOW_PORT", 5000, environ),
        api_port=env.port("CEPAGE_API_PORT", 3000, environ),
        ui_port=env.port("CEPAGE_UI_PORT", 8501, environ),
        prometheus_port=env.port("CEPAGE_PROMETHEUS_PORT", 9090, environ),
        alertmanager_port=env.port("CEPAGE_ALERTMANAGER_PORT", 9093, environ),
        node_exporter_port=env.port("CEPAGE_NODE_EXPORTER_PORT", 9100, environ),
        prediction_log=env.text("CEPAGE_PREDICTION_LOG", str(home / "production"), environ),
        gate_min_production_rows=env.integer(
            "CEPAGE_GATE_MIN_PRODUCTION_ROWS", 30, environ, minimum=1
        ),
        dataset_feedback_from=tuple(
            part.strip()
            for part in env.text("CEPAGE_DATASET_FEEDBACK_FROM", "", environ).split(",")
            if part.strip()
        ),
        feedback_max_age=env.integer(
            "CEPAGE_FEEDBACK_MAX_AGE_SECONDS", FEEDBACK_MAX_AGE_SECONDS, environ, minimum=1
        ),
        # Unset: the same tolerance as on the held-out rows.
        gate_production_tolerance=(
            env.number("CEPAGE_GATE_PRODUCTION_TOLERANCE", 0.0, environ)
            if env.optional_text("CEPAGE_GATE_PRODUCTION_TOLERANCE", environ)
            else None
        ),
        api_key=env.secret("CEPAGE_API_KEY", environ),
        shadow_min_predictions=env.integer(
            "CEPAGE_SHADOW_MIN_PREDICTIONS", 200, environ, minimum=1
        ),
        shadow_min_feedback=env.integer("CEPAGE_SHADOW_MIN_FEEDBACK", 50, environ, minimum=1),
    )


def export_tool_env(settings: Settings) -> None:
    """Point MLflow and BentoML at our stores.

    BentoML reads ``BENTOML_HOME`` when it is first imported, so this must run before any
    ``import bentoml``; subprocesses inherit it.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    os.environ["BENTOML_HOME"] = str(settings.bentoml_home)
    os.environ["CEPAGE_MODEL_NAME"] = settings.model_name
    # MLflow must never unpickle what it reads from the registry (cepage logs skops models and
    # reads them itself, allow-listed: train/artifacts.py).
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    # No usage telemetry from a local tool; a user can still set it to "false".
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
