"""An ASGI middleware in front of the API: optional API key, JSON only, bounded body size.

BentoML picks a decoder by Content-Type, so a form-encoded body would otherwise be parsed as a form
and answered with a confusing error; and without a limit a huge body is read whole into memory.
With an API key configured, a request without it is answered 401 before its body is read; so is
a read of what describes the model (``/metadata``, the OpenAPI documents: its features, their
ranges and categories, its metrics), which only a client holding the key needs. Health checks
and ``/metrics`` stay open (the reverse proxy does not publish ``/metrics``).

Only JSON passes (a request without a Content-Type is read as JSON, as BentoML does). BentoML's own
``application/vnd.bentoml+pickle`` (what its services send each other) is refused here too: nothing
the project loads is unpickled, so a pickle from the public must never reach BentoML's pickle
decoder, whatever BentoML's own check (an ``is_main`` test deep in its server) decides in a later
version or another topology. BentoML's refusal also answers a list, ``[{"error": ...}]``, not the
``{"error": ...}`` object the OpenAPI document promises for 415.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# What a guarded POST may send; a missing Content-Type counts as the first.
JSON_TYPES = ("application/json",)


API_KEY_HEADER = "x-api-key"
UNAUTHORIZED = (
    "Missing or wrong API key: send it as `Authorization: Bearer KEY` or `X-API-Key: KEY` "
    "(the service's CEPAGE_API_KEY)."
)


class RequestGuard:
    """Answers 401 without the API key (when one is set), 415 to a non-JSON POST, 413 to a body
    over ``max_body_bytes``; GET/HEAD of ``read_paths`` need the key too."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: tuple[str, ...],
        max_body_bytes: int,
        api_key: str | None = None,
        read_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.paths = paths
        self.read_paths = read_paths
        self.max_body_bytes = max_body_bytes
        self._api_key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD") and scope["path"] in self.read_paths:
            if self._api_key is not None and not self._authorized(_headers(scope)):
                await _reply(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if not self._authorized(headers):
            await _reply(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
            return
        media = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media not in JSON_TYPES:
            await _reply(send, 415, f"Content-Type must be application/json, not {media!r}.")
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _reply(send, 413, self._too_large())
            return
        # Chunked bodies have no length up front: read up to the limit, then replay.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _reply(send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _authorized(self, headers: dict[str, str]) -> bool:
        """True without a configured key, else when the request carries it (constant time)."""
        if self._api_key is None:
            return True
        scheme, _, token = headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else headers.get(API_KEY_HEADER, "")
        return hmac.compare_digest(given.encode("latin-1"), self._api_key)

    def _too_large(self) -> str:
        return f"Request body is larger than {self.max_body_bytes} bytes (CEPAGE_MAX_BODY_BYTES)."


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _reply(
    send: Send, status: int, error: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ConfiguredRequestGuard(RequestGuard):
    """The guard with the service's settings, read when a worker builds its app (not at import)."""

    def __init__(
        self, app: ASGIApp, *, paths: tuple[str, ...], read_paths: tuple[str, ...] = ()
    ) -> None:
        from bento.settings import load_settings

        settings = load_settings()
        super().__init__(
            app,
            paths=paths,
            max_body_bytes=settings.max_body_bytes,
            api_key=settings.api_key,
            read_paths=read_paths,
        )
