"""Make the service's OpenAPI document (``GET /docs.json``) describe what the service really sends.

BentoML generates the document and describes the ``detail`` of every 400 as a string, while it
answers pydantic's list of ``{type, loc, msg}``; it leaves the request bodies optional, while a
request without one is refused; and it cannot know the answers of our request guard (401, 413,
415). A client generated from the document, or a fuzzer checking answers against
it (``tests/reliability/test_fuzz.py``), would otherwise see the service break its own contract.
This middleware rewrites the document on its way out; every other request passes untouched.

Why a middleware and not BentoML's own mechanism: BentoML 1.4 has none for this. ``/docs.json``
serves ``Service.openapi_spec``, generated from the typed APIs (``_bentoml_sdk.service.openapi``)
with no hook for extra responses or error shapes; overriding that property would patch a private
API. The rewrite works on the public JSON document only, and the checks of that document
(``tests/reliability/test_fuzz.py``, ``tests/integration/test_api_key.py``) fail if an upgrade
changes its shape.
"""

from __future__ import annotations

import json
from typing import Any

from bento.guard import ASGIApp, Message, Receive, Scope, Send

SPEC_PATH = "/docs.json"
REFUSED = "RequestRefused"

_DETAIL_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["type", "loc", "msg"],
    "properties": {
        "type": {"type": "string", "title": "Problem kind"},
        "loc": {
            "type": "array",
            "title": "Location",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "msg": {"type": "string", "title": "Message"},
    },
}
_DETAIL: dict[str, Any] = {
    "title": "Error Detail",
    "anyOf": [{"type": "string"}, {"type": "array", "items": _DETAIL_ITEM}],
}
_REFUSED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": REFUSED,
    "required": ["error"],
    "properties": {"error": {"type": "string", "title": "Message"}},
    "description": "Refused before validation (API key, media type, body size).",
}
_GUARD_ANSWERS = {
    "413": "Request body over CEPAGE_MAX_BODY_BYTES",
    "415": "Content-Type is not application/json",
}


def patch_spec(spec: dict[str, Any], paths: tuple[str, ...], *, api_key: bool) -> dict[str, Any]:
    """The document with the real 400 ``detail`` and the guard's answers on ``paths``."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        if name in schemas:
            schemas[name].setdefault("properties", {})["detail"] = _DETAIL
    schemas[REFUSED] = _REFUSED_SCHEMA
    answers = dict(_GUARD_ANSWERS)
    if api_key:
        answers["401"] = "Missing or wrong API key (CEPAGE_API_KEY)"
    ref = {"$ref": f"#/components/schemas/{REFUSED}"}
    for path in paths:
        operation = spec.get("paths", {}).get(path, {}).get("post")
        if operation is None:
            continue
        if "requestBody" in operation:
            operation["requestBody"]["required"] = True  # no body is a 400, not a valid request
        responses = operation.setdefault("responses", {})
        for status, description in answers.items():
            responses[status] = {
                "description": description,
                "content": {"application/json": {"schema": ref}},
            }
    return spec


class OpenApiFixup:
    """Rewrites the JSON answer of ``GET /docs.json`` with :func:`patch_spec`."""

    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...], api_key: bool) -> None:
        self.app = app
        self.paths = paths
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != SPEC_PATH:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            body = b"".join(chunks)
            if start["status"] == 200:
                body = self._patched(body)
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, collect)

    def _patched(self, body: bytes) -> bytes:
        try:
            spec = json.loads(body)
        except ValueError:
            return body
        return json.dumps(patch_spec(spec, self.paths, api_key=self.api_key)).encode()


class ConfiguredOpenApiFixup(OpenApiFixup):
    """The fixup with the service's settings, read when a worker builds its app (not at import)."""

    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...]) -> None:
        from bento.settings import read_api_key

        super().__init__(app, paths=paths, api_key=read_api_key() is not None)
