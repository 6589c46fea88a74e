"""Make the service's OpenAPI document (``GET /docs.json``) describe what the service really sends.

BentoML generates the document and describes the ``detail`` of every 400 as a string, while it
answers pydantic's list of ``{type, loc, msg}``; it knows a record only as "an object of
values", while each feature has its own type (number, whole number, boolean, category with the
values seen in training, nullable or not: ``records_schema``); it leaves the request bodies
optional, while a request without one is refused; and it cannot know the answers of our request
guard (401, 413, 415). A client generated from the document, or a fuzzer checking answers against
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
from collections.abc import Mapping
from typing import Any

from bento.guard import ASGIApp, Message, Receive, Scope, Send
from bento.predictor import MAX_TEXT
from contracts.features import (
    BOOLEAN,
    CATEGORY,
    INTEGER,
    categories,
    kind,
    nullable,
)

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
    "description": "Refused: before validation (API key, media type, body size), or a "
    "batched model's full queue.",
}
_GUARD_ANSWERS = {
    "413": "Request body over CEPAGE_MAX_BODY_BYTES",
    "415": "Content-Type is not application/json",
}


# The served model's feature schema, published by the worker each time it installs a model
# (bento/service.py). BentoML builds the document from static types at import; a record's fields
# are known only once a model is loaded, and can change on a hot reload.
_served: dict[str, Any] = {}


def publish(feature_schema: Mapping[str, Any], max_records: int) -> None:
    """Make ``/docs.json`` describe this model's records from now on (this worker)."""
    _served["features"] = list(feature_schema["features"])
    _served["max_records"] = max_records


def feature_property(feature: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema of one feature's value in a record."""
    which = kind(feature)
    if which == CATEGORY:
        known = categories(feature)
        value: dict[str, Any] = {
            "anyOf": [
                {"type": "string", "enum": known, "title": "Seen in training"},
                {
                    "type": "string",
                    "maxLength": MAX_TEXT,
                    "title": "Not seen in training (scored, listed in out_of_range)",
                },
            ]
        }
    elif which == BOOLEAN:
        value = {"type": "boolean"}
    else:
        # "number" for an integer feature too: a fraction is accepted (the model computes in
        # floats); the kind is in the description and in x-cepage-kind.
        whole = "whole numbers " if which == INTEGER else ""
        value = {
            "type": "number",
            "x-cepage-kind": which,
            "description": f"Training range: {whole}{feature['min']:g} to {feature['max']:g}.",
        }
    if nullable(feature):
        choices = value.pop("anyOf", None) or [value]
        return {"anyOf": [*choices, {"type": "null"}], "description": "May be null or left out."}
    return value


def example_record(features: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A typical record: medians, the most frequent category, the more common boolean."""
    record: dict[str, Any] = {}
    for feature in features:
        which = kind(feature)
        if which == CATEGORY:
            record[feature["name"]] = categories(feature)[0]
        elif which == BOOLEAN:
            record[feature["name"]] = float(feature.get("true_share", 0.0)) >= 0.5
        elif which == INTEGER:
            record[feature["name"]] = round(float(feature["median"]))
        else:
            record[feature["name"]] = float(feature["median"])
    return record


def records_schema(features: list[Mapping[str, Any]], max_records: int) -> dict[str, Any]:
    """``records`` of ``POST /predict`` for the served model: each feature with its type."""
    return {
        "type": "array",
        "title": "Records",
        "description": "Rows to score, at most max_records (GET /metadata) per request.",
        "minItems": 1,
        "maxItems": max_records,
        "items": {
            "type": "object",
            "properties": {f["name"]: feature_property(f) for f in features},
            "required": [f["name"] for f in features if not nullable(f)],
            "additionalProperties": False,
        },
        "examples": [[example_record(features)]],
    }


def patch_spec(
    spec: dict[str, Any],
    paths: tuple[str, ...],
    *,
    api_key: bool,
    features: list[Mapping[str, Any]] | None = None,
    max_records: int | None = None,
) -> dict[str, Any]:
    """The document with the real 400 ``detail``, the guard's answers on ``paths`` and, given
    the served model's ``features``, the real type of each field of a record."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        if name in schemas:
            schemas[name].setdefault("properties", {})["detail"] = _DETAIL
    schemas[REFUSED] = _REFUSED_SCHEMA
    answers = dict(_GUARD_ANSWERS)
    if api_key:
        answers["401"] = "Missing or wrong API key (CEPAGE_API_KEY)"
    ref = {"$ref": f"#/components/schemas/{REFUSED}"}
    if features and max_records:
        _describe_records(spec, features, max_records)
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
        if path == "/predict":
            responses["503"] = {
                "description": "A batched model's queue is full: retry after Retry-After seconds",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                "content": {"application/json": {"schema": ref}},
            }
    return spec


def _describe_records(
    spec: dict[str, Any], features: list[Mapping[str, Any]], max_records: int
) -> None:
    operation = spec.get("paths", {}).get("/predict", {}).get("post")
    if operation is None or "requestBody" not in operation:
        return
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    body.setdefault("properties", {})["records"] = records_schema(features, max_records)


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
        patched = patch_spec(
            spec,
            self.paths,
            api_key=self.api_key,
            features=_served.get("features"),
            max_records=_served.get("max_records"),
        )
        return json.dumps(patched).encode()


class ConfiguredOpenApiFixup(OpenApiFixup):
    """The fixup with the service's settings, read when a worker builds its app (not at import)."""

    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...]) -> None:
        from bento.settings import read_api_key

        super().__init__(app, paths=paths, api_key=read_api_key() is not None)
