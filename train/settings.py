"""Configuration of the training side, read from the environment in one place.

Every value has a safe local default that keeps all state under ``.cepage/`` (gitignored).
The tools' own variables keep their names (``MLFLOW_TRACKING_URI``, ``BENTOML_HOME``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bento.settings import DEFAULT_MODEL_NAME, read_api_key


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
    api_key: str | None = None
    """The service's API key, sent by `cepage predict` (CEPAGE_API_KEY_FILE or CEPAGE_API_KEY)."""

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def uses_local_store(self) -> bool:
        """True when MLflow is the embedded SQLite store (no server)."""
        return self.tracking_uri.startswith("sqlite:")


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}.") from exc


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}.") from exc


def load_settings() -> Settings:
    """Read the settings from the environment (call it, never import a module-level copy)."""
    home = Path(os.environ.get("CEPAGE_HOME", ".cepage")).resolve()
    return Settings(
        home=home,
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        artifact_root=home / "mlartifacts",
        bentoml_home=Path(os.environ.get("BENTOML_HOME") or home / "bentoml").resolve(),
        model_name=os.environ.get("CEPAGE_MODEL_NAME", DEFAULT_MODEL_NAME),
        experiment=os.environ.get("CEPAGE_EXPERIMENT", "cepage"),
        # The gate: a candidate must reach the floor and lose at most `tolerance` macro-F1
        # against the champion on the same held-out rows. Documented in docs/cli.md.
        gate_tolerance=_float("CEPAGE_GATE_TOLERANCE", 0.01),
        gate_floor=_float("CEPAGE_GATE_FLOOR", 0.80),
        host=os.environ.get("CEPAGE_HOST", "127.0.0.1"),
        mlflow_port=_int("CEPAGE_MLFLOW_PORT", 5000),
        api_port=_int("CEPAGE_API_PORT", 3000),
        ui_port=_int("CEPAGE_UI_PORT", 8501),
        prometheus_port=_int("CEPAGE_PROMETHEUS_PORT", 9090),
        alertmanager_port=_int("CEPAGE_ALERTMANAGER_PORT", 9093),
        node_exporter_port=_int("CEPAGE_NODE_EXPORTER_PORT", 9100),
        api_key=read_api_key(os.environ),
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
    # No usage telemetry from a local tool; a user can still set it to "false".
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
