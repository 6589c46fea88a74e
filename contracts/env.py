"""Reading settings from the environment: one set of rules for every deployable.

An unset or empty variable takes the default; a value of the wrong type is a ``ValueError``
that names the variable, so a typo stops the process with one sentence instead of a traceback
deep in a library.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path


def _raw(name: str, env: Mapping[str, str] | None) -> str:
    return (os.environ if env is None else env).get(name, "").strip()


def text(name: str, default: str, env: Mapping[str, str] | None = None) -> str:
    """The variable's value, or ``default`` when it is unset or empty."""
    return _raw(name, env) or default


def optional_text(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, or None when it is unset or empty."""
    return _raw(name, env) or None


def integer(
    name: str,
    default: int,
    env: Mapping[str, str] | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """An integer variable (within ``minimum`` and ``maximum`` when given)."""
    raw = _raw(name, env)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, not {value}.")
    return value


def port(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    """A TCP port number."""
    return integer(name, default, env, minimum=1, maximum=65535)


def number(
    name: str,
    default: float,
    env: Mapping[str, str] | None = None,
    *,
    minimum: float | None = None,
    positive: bool = False,
) -> float:
    """A number variable (> 0 when ``positive``, at least ``minimum`` when given)."""
    raw = _raw(name, env)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}.") from None
    if not math.isfinite(value):  # NaN passes every comparison below; inf is no setting
        raise ValueError(f"{name} must be a number, not {raw!r}.")
    if positive and not value > 0:
        raise ValueError(f"{name} must be a number > 0, not {raw!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {raw!r}.")
    return value


def secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A secret from the file named by ``NAME_FILE`` (a Docker secret), else from ``NAME``.

    None when neither is set.

    Raises:
        ValueError: the file cannot be read or is empty (refuse to start rather than run open).
    """
    path = _raw(f"{name}_FILE", env)
    if not path:
        return _raw(name, env) or None
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"{name}_FILE={path} cannot be read: {exc.strerror}") from None
    if not value:
        raise ValueError(f"{name}_FILE={path} is empty")
    return value
