"""Signed prediction ids.

An id carries the model version, the predicted class and the time, signed with an HMAC. Any
worker or replica holding the same key can check feedback without shared state, and a made-up or
altered id is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

PREFIX = "p1"
_SIG_BYTES = 12


class InvalidPredictionIdError(ValueError):
    """The id was not issued by this service (or is too old)."""


@dataclass(frozen=True)
class IssuedPrediction:
    """What a valid id tells."""

    model_version: str
    label: str
    issued_at: int


class PredictionIds:
    """Issues and verifies prediction ids with one key."""

    def __init__(self, key: bytes, max_age_seconds: int) -> None:
        self._key = key
        self._max_age = max_age_seconds

    def issue(self, model_version: str, label: str, now: float | None = None) -> str:
        payload = "\x1f".join(
            (model_version, label, str(int(now or time.time())), secrets.token_hex(6))
        )
        body = _b64(payload.encode())
        return f"{PREFIX}.{body}.{self._sign(body)}"

    def verify(self, token: str, now: float | None = None) -> IssuedPrediction:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise InvalidPredictionIdError("is not a prediction id issued by this service")
        body, signature = parts[1], parts[2]
        if not hmac.compare_digest(signature, self._sign(body)):
            raise InvalidPredictionIdError("is unknown: it was not issued by this service")
        try:
            version, label, issued, _nonce = _unb64(body).decode().split("\x1f")
            issued_at = int(issued)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidPredictionIdError("is malformed") from exc
        if (now or time.time()) - issued_at > self._max_age:
            raise InvalidPredictionIdError(f"has expired (older than {self._max_age} s)")
        return IssuedPrediction(model_version=version, label=label, issued_at=issued_at)

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return _b64(digest[:_SIG_BYTES])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
