"""docs/api.md against a real `bentoml serve`: every route it answers is documented, every
documented route answers, and the answers the page shows for what cannot be run as an example
(media types, the timeout) are the ones sent.

The service publishes two OpenAPI documents (BentoML's ``/docs.json``, which includes the FastAPI
app's routes, and that app's own ``/metadata/openapi.json``); a route added to either without a
row in api.md's route table fails here, and so does a row for a route that is gone.
"""

from __future__ import annotations

import ast
import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.markdown import Table, code_spans, tables
from tests.support.procs import ROOT, bentoml_serve

pytestmark = pytest.mark.integration

API_DOC = ROOT / "docs" / "api.md"
OPENAPI_DOCUMENTS = ("/docs.json", "/metadata/openapi.json")
Route = tuple[str, str]


def route_table(text: str) -> Table:
    found = [t for t in tables(text) if t.header[:2] == ("method", "path")]
    assert len(found) == 1, (
        f"api.md should have one `| method | path | ... |` table, has {len(found)}"
    )
    return found[0]


def documented_routes(text: str) -> set[Route]:
    """(METHOD, path) of every row of api.md's route table."""
    routes: set[Route] = set()
    for row in route_table(text).rows:
        methods, paths = code_spans(row[0]), code_spans(row[1])
        assert methods and paths, f"a route row names no method or path: {row}"
        routes |= {(method.upper(), path) for method in methods for path in paths}
    return routes


def openapi_routes(api_url: str) -> dict[str, set[Route]]:
    """(METHOD, path) of every operation of each OpenAPI document the service publishes."""
    found: dict[str, set[Route]] = {}
    for document in OPENAPI_DOCUMENTS:
        response = requests.get(f"{api_url}{document}", timeout=10)
        assert response.status_code == 200, f"{document}: {response.status_code}"
        paths: dict[str, dict[str, Any]] = response.json()["paths"]
        found[document] = {
            (method.upper(), path)
            for path, operations in paths.items()
            for method in operations
            if method in {"get", "post", "put", "patch", "delete"}
        }
    return found


def undocumented(served: dict[str, set[Route]], documented: set[Route]) -> list[str]:
    return [
        f"{method} {path} (in {document})"
        for document, routes in served.items()
        for method, path in sorted(routes - documented)
    ]


@pytest.fixture(scope="module")
def served(api_url: str) -> dict[str, set[Route]]:
    return openapi_routes(api_url)


def test_every_route_of_the_openapi_documents_is_in_api_md(
    served: dict[str, set[Route]],
) -> None:
    missing = undocumented(served, documented_routes(API_DOC.read_text()))
    assert not missing, f"routes the service publishes but docs/api.md does not list: {missing}"


def test_a_route_missing_from_api_md_is_caught(served: dict[str, set[Route]]) -> None:
    text = API_DOC.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `GET` | `/healthz` |"))
    assert undocumented(served, documented_routes(text.replace(row + "\n", ""))) == [
        "GET /healthz (in /docs.json)"
    ]


def concrete(api_url: str, path: str) -> str:
    """A path to request for a documented route (``{file}``: an asset the Swagger page loads)."""
    if "{file}" not in path:
        return path
    page = requests.get(f"{api_url}/", timeout=10).text
    prefix = path.split("{file}", maxsplit=1)[0]
    asset = re.search(re.escape(prefix.lstrip("/")) + r"([\w.-]+)", page)
    assert asset, f"the Swagger page loads nothing under {prefix}"
    return prefix + asset.group(1)


@pytest.mark.parametrize("route", sorted(documented_routes(API_DOC.read_text())), ids=" ".join)
def test_every_route_in_api_md_answers(api_url: str, route: Route) -> None:
    method, path = route
    url = f"{api_url}{concrete(api_url, path)}"
    if method == "GET":
        response = requests.get(url, timeout=10)
        assert response.status_code == 200, f"{method} {path}: {response.status_code}"
    else:  # an empty object: the route exists and validates it
        response = requests.request(method, url, json={}, timeout=10)
        assert response.status_code == 400, f"{method} {path}: {response.status_code}"
        assert response.json()["detail"], response.text


# Routes outside the OpenAPI documents that BentoML 1.4 or FastAPI add, or would add with another
# setting (FastAPI's docs pages, BentoML's new index and task endpoints): each one the service
# answers must be in api.md's table, and none it does not answer.
PROBED = (
    "/",
    "/docs.json",
    "/schema.json",
    "/metadata/openapi.json",
    "/healthz",
    "/livez",
    "/readyz",
    "/metrics",
    "/static_content/{file}",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/health",
    "/assets/index.html",
    "/predict/status?task_id=x",
    "/predict/get?task_id=x",
)


def probe_problems(api_url: str, documented: set[Route]) -> list[str]:
    problems = []
    paths = {path for method, path in documented if method == "GET"}
    for probed in PROBED:
        path = probed.split("?", maxsplit=1)[0]
        url = f"{api_url}{concrete(api_url, probed)}"
        answered = requests.get(url, timeout=10).status_code != 404
        if answered and path not in paths:
            problems.append(f"GET {path} answers but api.md does not list it")
        if not answered and path in paths:
            problems.append(f"GET {path} is in api.md but answers 404")
    return problems


def test_every_route_outside_the_openapi_documents_is_in_api_md(api_url: str) -> None:
    problems = probe_problems(api_url, documented_routes(API_DOC.read_text()))
    assert not problems, problems


def test_other_paths_and_methods_get_404_and_405(api_url: str) -> None:
    # What api.md says of everything outside its table.
    unknown = requests.get(f"{api_url}/predictions", timeout=10)
    assert (unknown.status_code, unknown.text) == (404, "Not Found")
    assert requests.get(f"{api_url}/predict", timeout=10).status_code == 405
    assert requests.post(f"{api_url}/metadata", json={}, timeout=10).status_code == 405


def test_get_metadata_is_in_the_openapi_document(api_url: str, metadata: dict[str, Any]) -> None:
    # /metadata is a FastAPI route mounted beside BentoML's APIs: BentoML merges it into
    # /docs.json, and clients (the UI's form among them) are generated from that document.
    spec = requests.get(f"{api_url}/docs.json", timeout=10).json()
    operation = spec["paths"]["/metadata"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == set(metadata)
    assert "feature_schema" in schema["required"]


def test_a_pickle_body_is_refused_before_bentoml_reads_it(api_url: str) -> None:
    # BentoML answers its own refusal as a list; the guard's answer is the documented object.
    response = requests.post(
        f"{api_url}/predict",
        data=b"\x80\x05N.",
        headers={"Content-Type": "application/vnd.bentoml+pickle"},
        timeout=10,
    )
    assert response.status_code == 415
    assert response.json() == {
        "error": "Content-Type must be application/json, not 'application/vnd.bentoml+pickle'."
    }
    spec = requests.get(f"{api_url}/docs.json", timeout=10).json()
    answer = spec["paths"]["/predict"]["post"]["responses"]["415"]
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    assert spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]["required"] == ["error"]


def test_a_request_without_content_type_is_read_as_json(api_url: str) -> None:
    request = requests.Request("POST", f"{api_url}/predict", data=b'{"records": []}').prepare()
    request.headers.pop("Content-Type", None)
    with requests.Session() as session:
        response = session.send(request, timeout=10)
    assert response.status_code == 400
    assert response.json()["detail"][0]["type"] == "too_short"


def service_timeout() -> float:
    """``traffic={"timeout": N}`` of the ``@bentoml.service`` decorator in bento/service.py."""
    tree = ast.parse((ROOT / "bento" / "service.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "traffic":
                    timeout: float = ast.literal_eval(keyword.value)["timeout"]
                    return timeout
    raise AssertionError("bento/service.py sets no traffic timeout")


def documented_answer(status: str) -> dict[str, Any]:
    """The body api.md shows for a 5xx ``status``."""
    for table in tables(API_DOC.read_text()):
        if table.header == ("what", "status", "body"):
            for row in table.rows:
                if row[1] == status:
                    body: dict[str, Any] = json.loads(code_spans(row[2])[0])
                    return body
    raise AssertionError(f"docs/api.md shows no {status} answer")


def slow_post(url: str, path: str) -> tuple[int, bytes]:
    """POST that announces a body and sends only its start; (status, body) of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\nConnection: close\r\n\r\n{"rec'.encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_timeout_answer_is_the_documented_one(trained_home: Path, tmp_path: Path) -> None:
    # The real service with a 1 s timeout (BentoML's config file overrides the decorator's) and a
    # client that never finishes its body: BentoML cancels the request and answers 504.
    timeout = service_timeout()
    shown = documented_answer("504")
    assert f"in {timeout:g} seconds" in shown["error"], "api.md's timeout is not bento/service.py's"
    assert f"{timeout:g} s" in API_DOC.read_text()
    config = tmp_path / "bentoml.yaml"
    config.write_text("services:\n  cepage:\n    traffic:\n      timeout: 1\n")
    with bentoml_serve(trained_home, extra_env={"BENTOML_CONFIG": str(config)}) as url:
        status, body = slow_post(url, "/predict")
    assert status == 504
    assert json.loads(body) == {"error": shown["error"].replace(f"in {timeout:g} ", "in 1 ")}
