"""Signed prediction ids.

An id carries the model version, the predicted class and the time, signed with an HMAC. Any
worker or replica holding the same key can check feedback without shared state, and a made-up or
altered id is refused.

Each id is good for one feedback per worker process (:class:`UsedIds`): the ids already used are
kept in memory until they expire, so replaying one cannot inflate or hide an accuracy drop. With
N workers or replicas, one id could still be counted up to N times within its lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

PREFIX = "p1"
_SIG_BYTES = 12
# Ids a worker remembers as used: ~200 bytes each, so at most ~20 MB; past that the oldest
# used id is forgotten (and could be used once more) before it expires.
USED_IDS_CAPACITY = 100_000


class InvalidPredictionIdError(ValueError):
    """The id was not issued by this service (or is too old)."""


class AlreadyUsedError(ValueError):
    """The id has already been given feedback (in this worker process)."""


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


class UsedIds:
    """The verified ids already given feedback in this process, each until it expires.

    An OrderedDict in the order of use, keyed by the id's signature (unique per id, 16
    characters); the value is when the id expires. Every claim first forgets, from the oldest
    used, the ids that have expired (:meth:`PredictionIds.verify` refuses those anyway); a new
    id at ``capacity`` pushes out the oldest used: memory stays bounded whatever the traffic.
    Amortized O(1) per claim.
    """

    def __init__(self, max_age_seconds: int, capacity: int = USED_IDS_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._max_age = max_age_seconds
        self._capacity = capacity
        self._used: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._used)

    def claim(self, token: str, issued: IssuedPrediction, now: float | None = None) -> None:
        """Record ``token`` (verified, issued as ``issued``) as used.

        Raises:
            AlreadyUsedError: it was used before and has not expired since.
        """
        key = token.rpartition(".")[2]
        moment = now or time.time()
        with self._lock:
            used = self._used
            while used:
                oldest, expires = next(iter(used.items()))
                if expires >= moment:
                    break
                del used[oldest]
            if key in used:
                raise AlreadyUsedError(
                    "has already been given feedback: each prediction is counted once"
                )
            if len(used) >= self._capacity:
                used.popitem(last=False)
            used[key] = issued.issued_at + self._max_age


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
