"""The optional API key on a real service: /predict, /feedback and what describes the model
(/metadata, the OpenAPI documents, the model card) need it, health and /metrics stay open, and
the UI's client and `cepage predict` send it when configured."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from stack.processes import start, stop_group, wait_until
from tests.support.procs import (
    BIN,
    bentoml_serve,
    cepage,
    free_port,
    private_bentoml_home,
    stack_env,
)
from ui.client import ApiClient, ApiError

pytestmark = pytest.mark.integration

KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def keyed_url(trained_home: Path) -> Iterator[str]:
    """A real service whose key comes from a file (as a Docker secret would give it)."""
    secret = trained_home / "api_key"
    secret.write_text(KEY + "\n")
    with bentoml_serve(trained_home, extra_env={"CEPAGE_API_KEY_FILE": str(secret)}) as url:
        yield url


def test_predict_and_feedback_need_the_key(keyed_url: str, median_record: dict[str, float]) -> None:
    body = {"records": [median_record]}
    bare = requests.post(f"{keyed_url}/predict", json=body, timeout=10)
    assert bare.status_code == 401
    assert "CEPAGE_API_KEY" in bare.json()["error"]
    wrong = requests.post(
        f"{keyed_url}/predict", json=body, headers={"Authorization": "Bearer no"}, timeout=10
    )
    assert wrong.status_code == 401
    ok = requests.post(f"{keyed_url}/predict", json=body, headers={"X-API-Key": KEY}, timeout=10)
    assert ok.status_code == 200, ok.text
    prediction = ok.json()["predictions"][0]
    feedback = {"prediction_id": prediction["id"], "label": prediction["label"]}
    assert requests.post(f"{keyed_url}/feedback", json=feedback, timeout=10).status_code == 401
    answered = requests.post(
        f"{keyed_url}/feedback", json=feedback, headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )  # fmt: skip
    assert answered.status_code == 200, answered.text


@pytest.mark.parametrize("path", ["/readyz", "/livez", "/metrics"])
def test_health_and_metrics_stay_open(keyed_url: str, path: str) -> None:
    assert requests.get(f"{keyed_url}{path}", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("path", "names_features"),
    [
        ("/metadata", True),
        ("/docs.json", True),
        ("/metadata/openapi.json", False),
        ("/model-card", True),
    ],
)
def test_what_describes_the_model_needs_the_key(
    keyed_url: str, path: str, names_features: bool
) -> None:
    """Security item 12: the features, their ranges and categories, the metrics are for clients
    holding the key, not for anyone who finds the API's name."""
    bare = requests.get(f"{keyed_url}{path}", timeout=10)
    assert bare.status_code == 401, bare.text[:200]
    assert "feature" not in bare.text
    keyed = requests.get(f"{keyed_url}{path}", headers={"X-API-Key": KEY}, timeout=10)
    assert keyed.status_code == 200
    assert ("alcohol" in keyed.text) is names_features


def test_the_ui_client_sends_the_key_and_explains_a_missing_one(
    keyed_url: str, median_record: dict[str, float]
) -> None:
    [prediction] = ApiClient(keyed_url, api_key=KEY).predict([median_record])
    assert prediction.label
    with pytest.raises(ApiError) as caught:
        ApiClient(keyed_url).predict([median_record])
    assert caught.value.status == 401
    assert "needs an API key" in str(caught.value)
    assert "CEPAGE_API_KEY" in str(caught.value)


def test_cepage_predict_sends_the_key(
    keyed_url: str, trained_home: Path, median_record: dict[str, float]
) -> None:
    args = ("predict", "--json", json.dumps([median_record]), "--url", keyed_url)
    refused = cepage(*args, env=stack_env(trained_home))
    assert refused.returncode == 1
    assert "API key" in refused.stdout
    done = cepage(*args, env=stack_env(trained_home, CEPAGE_API_KEY=KEY))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["predictions"][0]["label"]


def test_an_unreadable_key_file_stops_the_service_before_it_serves(
    trained_home: Path, tmp_path: Path
) -> None:
    # Refuse to start rather than run open or answer 500s: checked once, before any worker.
    port = free_port()
    env = stack_env(trained_home, CEPAGE_API_KEY_FILE=str(tmp_path / "missing"))
    env["BENTOML_HOME"] = str(private_bentoml_home(trained_home, port))
    argv = [str(BIN / "bentoml"), "serve", "bento.service:Classifier", "--port", str(port)]
    log = tmp_path / "serve.log"
    proc = start([*argv, "--host", "127.0.0.1"], log=log, env=env)
    try:
        exited = wait_until(lambda: proc.poll() is not None, timeout=120, interval=0.5)
    finally:
        stop_group(proc)  # a service that wrongly kept running: its workers too
    output = log.read_text()
    assert exited and proc.returncode != 0, output[-3000:]
    assert f"CEPAGE_API_KEY_FILE={tmp_path / 'missing'} cannot be read" in output
