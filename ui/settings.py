"""Configuration of the UI, read from the environment in one place.

The API URL has no default here: its one home is the launcher (``cepage up``, compose, the
Ansible inventory), which passes it as ``CEPAGE_API_URL``. Without it the page asks for the URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class UiSettings:
    """Runtime settings of the UI."""

    api_url: str | None
    """Base URL of the model service, e.g. ``http://127.0.0.1:PORT``; None when unset."""
    timeout_seconds: float
    """How long one request to the service may take before the UI gives up."""
    api_key: str | None = None
    """The service's API key (``CEPAGE_API_KEY_FILE`` or ``CEPAGE_API_KEY``), sent when set."""


def load_settings(environ: Mapping[str, str] | None = None) -> UiSettings:
    """Read the UI settings from ``environ`` (default: the process environment).

    Raises:
        ValueError: ``CEPAGE_API_TIMEOUT_SECONDS`` is not a positive number, or
            ``CEPAGE_API_KEY_FILE`` cannot be read.
    """
    env = os.environ if environ is None else environ
    api_url = env.get("CEPAGE_API_URL", "").strip() or None
    raw_timeout = env.get("CEPAGE_API_TIMEOUT_SECONDS", "").strip()
    try:
        timeout = float(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise ValueError(f"CEPAGE_API_TIMEOUT_SECONDS must be a number > 0, not {raw_timeout!r}")
    return UiSettings(api_url=api_url, timeout_seconds=timeout, api_key=_api_key(env))


def _api_key(env: Mapping[str, str]) -> str | None:
    """The key from the file named by ``CEPAGE_API_KEY_FILE`` (a Docker secret), else the env.

    The same rule as ``bento.settings.read_api_key``, on purpose not imported: the UI image
    carries no service code (the deployables share contracts, not imports)."""
    path = env.get("CEPAGE_API_KEY_FILE", "").strip()
    if not path:
        return env.get("CEPAGE_API_KEY", "").strip() or None
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"CEPAGE_API_KEY_FILE={path} cannot be read: {exc.strerror}") from exc
    if not key:
        raise ValueError(f"CEPAGE_API_KEY_FILE={path} is empty")
    return key
