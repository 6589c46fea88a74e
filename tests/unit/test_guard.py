"""The request guard: optional API key, JSON only, bounded bodies, everything else passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from bento.guard import RequestGuard
from bento.settings import read_api_key


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


def client(limit: int = 100, api_key: str | None = None) -> TestClient:
    app = Starlette(
        routes=[
            Route("/predict", echo, methods=["POST"]),
            Route("/other", echo, methods=["POST", "GET"]),
            Route("/metadata", echo, methods=["GET"]),
        ]
    )
    guard = RequestGuard(
        app, paths=("/predict",), max_body_bytes=limit, api_key=api_key, read_paths=("/metadata",)
    )
    return TestClient(guard)


def test_keyed_reads_need_the_key_only_when_one_is_set() -> None:
    keyed = client(api_key="k3y")
    assert keyed.get("/metadata").status_code == 401
    assert keyed.get("/metadata", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert keyed.get("/metadata", headers={"X-API-Key": "k3y"}).status_code == 200
    assert keyed.head("/metadata").status_code == 401
    assert keyed.get("/other").status_code == 200  # not a keyed read
    assert client().get("/metadata").status_code == 200


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


@pytest.mark.parametrize(
    "media",
    [
        "application/vnd.bentoml+pickle",
        "Application/VND.BentoML+Pickle; charset=binary",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
    ],
)
def test_anything_but_json_is_refused_before_the_app_reads_it(media: str) -> None:
    # BentoML would unpickle a pickle body (it refuses one only when it believes it is the main
    # service): the guard must not let a pickle from the public reach its decoder.
    reached: list[bytes] = []

    async def record(request: Request) -> JSONResponse:
        reached.append(await request.body())
        return JSONResponse({})

    app = Starlette(routes=[Route("/predict", record, methods=["POST"])])
    guarded = TestClient(RequestGuard(app, paths=("/predict",), max_body_bytes=100))
    response = guarded.post("/predict", content=b"\x80\x05N.", headers={"content-type": media})
    assert response.status_code == 415
    refused = media.partition(";")[0].lower()
    assert response.json() == {"error": f"Content-Type must be application/json, not {refused!r}."}
    assert reached == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-type": "application/json; charset=utf-8"}, {"content-type": "APPLICATION/JSON"}],
    ids=["no content-type", "with parameters", "upper case"],
)
def test_json_in_any_spelling_or_no_content_type_passes(headers: dict[str, str]) -> None:
    response = client().post("/predict", content=b"{}", headers=headers)
    assert response.status_code == 200


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


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"x-api-key": "s3cre"}, {"authorization": "s3cret"}],
    ids=["none", "wrong bearer", "wrong x-api-key", "no scheme"],
)
def test_with_an_api_key_requests_without_it_get_401(headers: dict[str, str]) -> None:
    response = client(api_key="s3cret").post("/predict", content=b"{}", headers=JSON | headers)
    assert response.status_code == 401
    assert "API key" in response.json()["error"]
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("headers", [{"authorization": "Bearer s3cret"}, {"x-api-key": "s3cret"}])
def test_the_right_key_in_either_header_passes(headers: dict[str, str]) -> None:
    response = client(api_key="s3cret").post("/predict", content=b"{}", headers=JSON | headers)
    assert response.status_code == 200


def test_the_key_is_checked_before_the_body_is_read() -> None:
    # A client without the key cannot make the service read (or size-check) its body.
    response = client(limit=10, api_key="k").post("/predict", content=b"x" * 50, headers=JSON)
    assert response.status_code == 401


def test_unguarded_paths_stay_open_with_a_key() -> None:
    guarded = client(api_key="s3cret")
    assert guarded.post("/other", content=b"{}", headers=JSON).status_code == 200
    assert guarded.get("/other").status_code == 200


def test_api_key_comes_from_the_file_first(tmp_path: Path) -> None:
    secret = tmp_path / "api_key"
    secret.write_text("from-file\n")
    assert read_api_key({"CEPAGE_API_KEY_FILE": str(secret), "CEPAGE_API_KEY": "env"}) == (
        "from-file"
    )
    assert read_api_key({"CEPAGE_API_KEY": " env "}) == "env"
    assert read_api_key({"CEPAGE_API_KEY": ""}) is None
    assert read_api_key({}) is None


def test_an_unreadable_or_empty_key_file_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        read_api_key({"CEPAGE_API_KEY_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_api_key({"CEPAGE_API_KEY_FILE": str(tmp_path / "empty")})
