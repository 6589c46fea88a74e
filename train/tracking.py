"""MLflow plumbing shared by the steps: connecting, the experiment, clear store errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from train.errors import StepError
from train.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


class StoreError(StepError):
    """The MLflow tracking store or a model in it cannot be reached; one clear sentence."""


def connect(settings: Settings, *, create: bool) -> MlflowClient:
    """Point MLflow at the configured store and return a client.

    With the embedded SQLite store, ``create=False`` refuses to conjure an empty database (MLflow
    would silently make one and later fail with a misleading error).
    """
    import mlflow
    from mlflow import MlflowClient

    if settings.uses_local_store:
        db = Path(settings.tracking_uri.removeprefix("sqlite:///"))
        if not create and not db.is_file():
            raise StoreError(
                f"No MLflow tracking store at {db}: run `cepage train` first, or set "
                "MLFLOW_TRACKING_URI to your MLflow server."
            )
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    if not settings.uses_local_store:
        _check_server(client, settings)
    return client


# One quick look before MLflow's own client, which retries a refused connection with backoff for
# about four minutes before it gives up.
PREFLIGHT_TIMEOUT_S = 5.0


def _preflight(uri: str) -> None:
    """Fail in seconds, not minutes, when an http(s) tracking server does not answer at all.

    Any HTTP answer (even 401 from a proxy) counts as reachable, and so does a TLS handshake this
    plain check cannot verify (a private CA that MLflow's own TLS settings trust): MLflow's client
    judges the rest.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=PREFLIGHT_TIMEOUT_S)
    except requests.exceptions.SSLError:
        return  # something answered TLS: it is up
    except requests.RequestException as exc:
        raise StoreError(
            f"Cannot reach the MLflow tracking server at {uri} ({type(exc).__name__}); "
            "is it running? Nothing was changed."
        ) from exc


def _check_server(client: MlflowClient, settings: Settings) -> None:
    from mlflow.exceptions import MlflowException

    _preflight(settings.tracking_uri)
    try:
        client.search_experiments(max_results=1)
    except (MlflowException, OSError) as exc:
        raise StoreError(
            f"Cannot reach the MLflow tracking server at {settings.tracking_uri} "
            f"({type(exc).__name__}); is it running?"
        ) from exc


def ensure_experiment(client: MlflowClient, settings: Settings) -> str:
    """The experiment's id, creating it (with artifacts under .cepage/ locally) if needed."""
    existing = client.get_experiment_by_name(settings.experiment)
    if existing is not None:
        return str(existing.experiment_id)
    location = None
    if settings.uses_local_store:
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
        location = settings.artifact_root.as_uri()
    return str(client.create_experiment(settings.experiment, artifact_location=location))
