"""The shadow challenger with real processes: the gate rejects a candidate (@challenger),
``cepage package`` puts it in the store beside the champion, a real ``bentoml serve`` with
CEPAGE_SHADOW=on answers with the champion while the challenger scores every record off the
response path (metrics, the production log's shadow dataset), and ``cepage promote --shadow``
refuses a worse challenger and promotes one at least as good on the same labelled records.

Traffic is the wine data with its true labels as feedback: a challenger trained like the
champion is as good; a crippled one (C tiny: one class for everything) is not.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests

from stack.home import cepage, prepare_home, stack_env
from tests.support.procs import bentoml_serve
from train.data import load_wine_frame

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 120
LABELLED = 90
BATCH = 20
RULE = {"CEPAGE_SHADOW_MIN_PREDICTIONS": "100", "CEPAGE_SHADOW_MIN_FEEDBACK": "80"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_home(tmp_path_factory.mktemp("shadow"))


def run(home: Path, *args: str, **env: str) -> Any:
    return cepage(*args, env=stack_env(home, **env), timeout=600)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def shadow_traffic(home: Path) -> str:
    """Predictions and labels through a server shadowing the packaged challenger; returns its
    final /metrics text (once the challenger has answered every record)."""
    frame = load_wine_frame().sample(RECORDS, random_state=11).reset_index(drop=True)
    labels = frame.pop("cultivar").tolist()
    records = frame.to_dict(orient="records")
    env = {
        "CEPAGE_SHADOW": "on",
        "CEPAGE_PREDICTION_LOG": str(home / "production"),
        "CEPAGE_PREDICTION_LOG_FLUSH_SECONDS": "0.5",
    }
    with bentoml_serve(home, extra_env=env) as url:
        ids: list[str] = []
        for start in range(0, RECORDS, BATCH):
            answer = requests.post(
                f"{url}/predict", json={"records": records[start : start + BATCH]}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["model"]["version"] == "1"  # the champion answers
            ids += [p["id"] for p in answer.json()["predictions"]]
        deadline = time.monotonic() + 20
        while True:
            text = requests.get(f"{url}/metrics", timeout=10).text
            if metric(text, "cepage_shadow_predictions_total") >= RECORDS:
                break
            assert time.monotonic() < deadline, "the shadow did not answer every record"
            time.sleep(0.2)
        for prediction_id, label in list(zip(ids, labels, strict=True))[:LABELLED]:
            answer = requests.post(
                f"{url}/feedback", json={"prediction_id": prediction_id, "label": label}, timeout=30
            )
            assert answer.status_code == 200, answer.text
        return requests.get(f"{url}/metrics", timeout=10).text


def test_a_worse_challenger_is_shadowed_and_refused(home: Path) -> None:
    # Crippled: under the floor, so the gate makes it @challenger (exit 3).
    done = run(home, "retrain", "--no-build", "--param", "C=0.00001")
    assert done.returncode == 3, done.stdout + done.stderr
    # A challenger without the digest the gate records (judged by an older cepage) is left out
    # of the package; the champion is packaged all the same.
    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    recorded = client.get_model_version("cepage-classifier", "2").tags["cepage.model_sha256"]
    client.delete_model_version_tag("cepage-classifier", "2", "cepage.model_sha256")
    without = run(home, "package", "--no-build")
    assert without.returncode == 0, without.stdout + without.stderr
    assert "Note: the @challenger was not packaged for the shadow" in without.stdout
    assert "Imported MLflow version 1" in without.stdout
    client.set_model_version_tag("cepage-classifier", "2", "cepage.model_sha256", recorded)
    packaged = run(home, "package", "--no-build")
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    assert "Imported @challenger (version 2)" in packaged.stdout

    text = shadow_traffic(home)
    assert metric(text, "cepage_shadow_model_info", model_version="2") == 1
    assert metric(text, "cepage_shadow_requests_total", outcome="scored") == RECORDS // BATCH
    assert metric(text, "cepage_shadow_requests_total", outcome="dropped") == 0
    assert metric(text, "cepage_shadow_predictions_total", challenger_version="2") == RECORDS
    # It answers one class for everything: it disagrees with the champion on the others.
    assert 0 < metric(text, "cepage_shadow_predictions_total", agreed="false") < RECORDS
    assert metric(text, "cepage_shadow_feedback_total", challenger_version="2") == LABELLED

    refused = run(home, "promote", "--shadow", **RULE)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert f"{RECORDS} records answered" in refused.stdout
    assert f"{LABELLED} labelled" in refused.stdout
    assert "Kept version 1 as @champion" in refused.stdout
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("cepage-classifier", "champion").version) == "1"
    tags = client.get_model_version("cepage-classifier", "2").tags
    assert tags["shadow.promoted"] == "false"
    assert float(tags["shadow.challenger_accuracy"]) < float(tags["shadow.champion_accuracy"])


def test_a_challenger_as_good_is_promoted_on_its_shadow_record(home: Path) -> None:
    # Trained like the champion, but asked to beat it by 0.5 macro-F1: rejected by the gate.
    done = run(home, "retrain", "--no-build", "--tolerance", "-0.5")
    assert done.returncode == 3, done.stdout + done.stderr
    run(home, "package", "--no-build")
    # Too little evidence yet: refused without looking at the scores.
    early = run(home, "promote", "--shadow", **RULE)
    assert early.returncode == 3 and "fewer than the 100 required" in early.stdout

    shadow_traffic(home)
    promoted = run(home, "promote", "--shadow", **RULE)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "Promoted version 3 to @champion" in promoted.stdout
    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("cepage-classifier", "champion").version) == "3"
    assert str(client.get_model_version_by_alias("cepage-classifier", "previous").version) == "1"
    # The challenger is now the champion: packaging shadows nothing and clears the store.
    again = run(home, "package", "--no-build")
    assert again.returncode == 0 and "challenger" not in again.stdout
    assert not list((home / "bentoml" / "models").glob("cepage-classifier-challenger"))
