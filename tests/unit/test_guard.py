"""The request guard: JSON only, bounded bodies, everything else passes through."""

from __future__ import annotations

from collections.abc import Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from bento.guard import RequestGuard


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


def client(limit: int = 100) -> TestClient:
    app = Starlette(
        routes=[Route("/predict", echo, methods=["POST"]), Route("/other", echo, methods=["POST"])]
    )
    return TestClient(RequestGuard(app, paths=("/predict",), max_body_bytes=limit))


def test_json_under_the_limit_reaches_the_app_intact() -> None:
    response = client().post(
        "/predict", content=b'{"a": 1}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {"size": 8}


def test_other_media_types_get_415() -> None:
    response = client().post("/predict", data={"a": "1"})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_oversized_bodies_get_413_declared_or_streamed() -> None:
    big = b"x" * 101
    response = client().post("/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b"x" * 60
        yield b"x" * 60

    streamed = client().post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_unguarded_paths_pass_through() -> None:
    response = client().post("/other", content=b"x" * 500, headers={"content-type": "text/plain"})
    assert response.status_code == 200
