"""Configuration of the UI, read from the environment in one place.

The API URL has no default here: its one home is the launcher (``cepage up``, compose, the
Ansible inventory), which passes it as ``CEPAGE_API_URL``. Without it the page refuses to start:
it never talks to an address a visitor types (docs/ui.md, "Whom the UI talks to").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts import env

DEFAULT_TIMEOUT_SECONDS = 10.0
# Batch scoring limits: the UI calls the API from inside the network, past the proxy's own limits,
# so a visitor's upload must not turn into an unbounded number of model calls.
DEFAULT_MAX_UPLOAD_MB = 5
DEFAULT_MAX_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class UiSettings:
    """Runtime settings of the UI."""

    api_url: str | None
    """Base URL of the model service, e.g. ``http://127.0.0.1:PORT``; None when unset."""
    timeout_seconds: float
    """How long one request to the service may take before the UI gives up."""
    api_key: str | None = None
    """The service's API key (``CEPAGE_API_KEY_FILE`` or ``CEPAGE_API_KEY``), sent when set."""
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    """Largest CSV a visitor may upload for batch scoring, in MB."""
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    """Most rows scored from one uploaded CSV."""
    drift_reports_url: str | None = None
    """Where the drift reports are (``cepage report``'s runs in MLflow): a link in the sidebar,
    never fetched by the UI (it talks to the service only)."""


def load_settings(environ: Mapping[str, str] | None = None) -> UiSettings:
    """Read the UI settings from ``environ`` (default: the process environment).

    Raises:
        ValueError: ``CEPAGE_API_TIMEOUT_SECONDS`` is not a positive number, a batch limit
            (``CEPAGE_UI_MAX_UPLOAD_MB``, ``CEPAGE_UI_MAX_BATCH_ROWS``) not a positive integer,
            or ``CEPAGE_API_KEY_FILE`` cannot be read.
    """
    return UiSettings(
        api_url=env.optional_text("CEPAGE_API_URL", environ),
        timeout_seconds=env.number(
            "CEPAGE_API_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS, environ, positive=True
        ),
        api_key=env.secret("CEPAGE_API_KEY", environ),
        max_upload_mb=env.integer(
            "CEPAGE_UI_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB, environ, minimum=1
        ),
        max_batch_rows=env.integer(
            "CEPAGE_UI_MAX_BATCH_ROWS", DEFAULT_MAX_BATCH_ROWS, environ, minimum=1
        ),
        drift_reports_url=_link(
            "CEPAGE_DRIFT_REPORTS_URL", env.optional_text("CEPAGE_DRIFT_REPORTS_URL", environ)
        ),
    )


def _link(name: str, url: str | None) -> str | None:
    """An http(s) URL shown as a link: another scheme (``javascript:``) is refused."""
    if url is None:
        return None
    if not url.startswith(("https://", "http://")) or any(c in url for c in " ()[]<>"):
        raise ValueError(f"{name} must be an http(s) URL, not {url!r}.")
    return url
