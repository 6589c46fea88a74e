"""The model card of a version made by the real `cepage package`: every field read back from
MLflow against what MLflow and the data say independently, the same card served by a real
`bentoml serve` on `GET /model-card`, and a new card when a new version is packaged."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from sklearn.datasets import load_wine

from contracts.model_card import (
    CARD_JSON_ARTIFACT,
    CARD_MARKDOWN_ARTIFACT,
    INTENDED_USE_PATH,
    render_markdown,
)
from contracts.names import MODEL_NAME
from tests.support.mixed_data import TARGET as MIXED_TARGET
from tests.support.procs import ROOT, bentoml_serve, cepage, stack_env

pytestmark = pytest.mark.integration


def client(home: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def stored(home: Path, version: str) -> tuple[dict[str, Any], str, Any, Any]:
    """The card's JSON and Markdown as stored on the version's run, the version and its run."""
    mlflow = client(home)
    registered = mlflow.get_model_version(MODEL_NAME, version)
    folder = Path(mlflow.download_artifacts(registered.run_id, "model_card"))
    document = json.loads((folder / Path(CARD_JSON_ARTIFACT).name).read_text())
    markdown = (folder / Path(CARD_MARKDOWN_ARTIFACT).name).read_text()
    return document, markdown, registered, mlflow.get_run(registered.run_id)


def champion(home: Path) -> str:
    aliases = client(home).get_registered_model(MODEL_NAME).aliases
    return str(aliases["champion"])


def test_the_wine_card_in_mlflow_is_true(trained_home: Path) -> None:
    card, markdown, registered, run = stored(trained_home, champion(trained_home))
    assert markdown == render_markdown(card)
    model = card["model"]
    assert (model["name"], model["version"], model["run_id"]) == (
        MODEL_NAME, str(registered.version), registered.run_id,
    )  # fmt: skip
    assert model["estimator"] == "linear"
    assert model["model_sha256"] == registered.tags["cepage.model_sha256"]
    assert "champion" in model["aliases"]

    # The data: the wine set as scikit-learn ships it.
    wine = load_wine()
    data = card["data"]
    assert data["name"] == "wine"
    assert data["source"] == "sklearn.datasets.load_wine"
    assert data["target"] == "cultivar"
    assert data["rows"]["training"] + data["rows"]["held_out"] == len(wine.target)
    assert sorted(data["class_counts"].values()) == sorted(Counter(wine.target).values())
    assert list(data["class_counts"]) == sorted(data["classes"])
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert data["training_digest"] == inputs["wine-train"].digest
    assert data["held_out_digest"] == inputs["wine-holdout"].digest
    rows = Path(client(trained_home).download_artifacts(registered.run_id, "data/training.csv"))
    assert data["stored_rows_sha256"] == hashlib.sha256(rows.read_bytes()).hexdigest()

    # The features: names, kinds and ranges of the data itself.
    frame = pd.DataFrame(wine.data, columns=wine.feature_names)
    assert [f["name"] for f in card["features"]] == wine.feature_names
    for feature in card["features"]:
        column = frame[feature["name"]]
        assert (feature["min"], feature["max"]) == (column.min(), column.max())
        assert feature["median"] == pytest.approx(column.median())
        assert feature["nullable"] is False

    # The metrics: training's logged figures, and the matrix that gives them back.
    metrics = card["metrics"]
    logged = run.data.metrics
    assert metrics["overall"] == {k: logged[k] for k in ("accuracy", "f1_macro", "log_loss")}
    for label, figures in metrics["per_class"].items():
        assert figures["f1"] == pytest.approx(logged[f"f1_{label}"])
    matrix = metrics["confusion_matrix"]
    counts = matrix["counts"]
    assert matrix["labels"] == data["classes"]
    assert sum(map(sum, counts)) == metrics["held_out_rows"] == data["rows"]["held_out"]
    diagonal = sum(counts[i][i] for i in range(len(counts)))
    assert diagonal / metrics["held_out_rows"] == pytest.approx(logged["accuracy"])
    assert [sum(row) for row in counts] == [m["support"] for m in metrics["per_class"].values()]

    # The gate, the parameters, the user's text.
    gate = card["gate"]
    assert gate["decision"] == "promoted"
    assert gate["reason"] == registered.tags["gate.reason"]
    assert gate["candidate_f1"] == float(registered.tags["gate.candidate_f1"])
    assert card["training"]["params"] == run.data.params
    intended = (ROOT / INTENDED_USE_PATH).read_bytes()
    assert card["intended_use"]["sha256"] == hashlib.sha256(intended).hexdigest()
    written = re.sub(r"<!--.*?-->", "", intended.decode(), flags=re.DOTALL).strip()
    assert card["intended_use"]["markdown"] == written
    assert written in markdown and "<!--" not in markdown


def test_the_mixed_card_lists_categories_blanks_and_text_classes(
    mixed_home: Path, mixed_csv: Path
) -> None:
    card, _, _, _ = stored(mixed_home, champion(mixed_home))
    raw = pd.read_csv(mixed_csv)
    data = card["data"]
    assert data["source"] == str(mixed_csv.resolve())
    assert data["class_counts"] == dict(sorted(raw[MIXED_TARGET].value_counts().items()))
    by_name = {f["name"]: f for f in card["features"]}
    assert list(by_name) == [c for c in raw.columns if c != MIXED_TARGET]
    for name, feature in by_name.items():
        blanks = raw[name].isna().mean()
        assert feature["nullable"] is bool(blanks > 0)
        assert feature["missing_share"] == pytest.approx(blanks)
        if feature["kind"] == "category":
            assert set(feature["categories"]) == set(raw[name].dropna().astype(str))


@pytest.fixture(scope="module")
def served_card(api_url: str) -> dict[str, Any]:
    response = requests.get(f"{api_url}/model-card", params={"format": "json"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def test_the_service_serves_the_card_stored_in_mlflow(
    api_url: str, trained_home: Path, served_card: dict[str, Any], metadata: dict[str, Any]
) -> None:
    card, markdown, _, _ = stored(trained_home, metadata["version"])
    assert served_card == card
    default = requests.get(f"{api_url}/model-card", timeout=10)
    assert default.status_code == 200
    assert default.headers["content-type"] == "text/markdown; charset=utf-8"
    assert default.text == markdown
    asked = requests.get(
        f"{api_url}/model-card", headers={"Accept": "application/json"}, timeout=10
    )
    assert asked.json() == card


def test_a_bad_format_gets_400_naming_it(api_url: str) -> None:
    response = requests.get(f"{api_url}/model-card", params={"format": "html"}, timeout=10)
    assert response.status_code == 400
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["query", "format"]


@pytest.fixture(scope="module")
def repackaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A home with version 1 packaged, then version 2 trained, promoted and packaged; served."""
    home = tmp_path_factory.mktemp("cepage-card-home")
    env = stack_env(home)
    for args in (
        ("retrain", "--no-build"),
        ("retrain", "--param", "C=0.5", "--no-build"),
    ):
        done = cepage(*args, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    with bentoml_serve(home) as url:
        yield home, url


def test_packaging_a_new_version_makes_its_own_card(repackaged: tuple[Path, str]) -> None:
    home, url = repackaged
    first, _, _, _ = stored(home, "1")
    second, _, registered, run = stored(home, "2")
    assert first["model"]["version"] == "1"
    assert second["model"]["version"] == "2"
    assert second["model"]["run_id"] == registered.run_id != first["model"]["run_id"]
    assert second["training"]["params"]["estimator.C"] == "0.5"
    # Judged against version 1 on the same rows: both scores are on the card.
    assert second["gate"]["decision"] == "promoted"
    assert second["gate"]["champion_f1"] == float(registered.tags["gate.champion_f1"])
    assert second["metrics"]["overall"]["f1_macro"] == run.data.metrics["f1_macro"]
    served = requests.get(f"{url}/model-card?format=json", timeout=10).json()
    assert served == second


def test_the_cli_makes_the_card_of_any_version(repackaged: tuple[Path, str]) -> None:
    home, _ = repackaged
    env = stack_env(home)
    done = cepage("registry", "model-card", "--version", "1", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = json.loads(done.stdout)
    card, markdown, _, _ = stored(home, "1")
    assert printed == card  # stored anew on version 1's run
    assert markdown == render_markdown(printed)
    assert printed["model"]["aliases"] == ["previous"]  # as the registry says now
    out = home / "published-card"
    as_markdown = cepage("registry", "model-card", "--out", str(out), env=env)
    assert as_markdown.returncode == 0
    assert as_markdown.stdout.startswith(f"# Model card: {MODEL_NAME} version 2\n")
    # What the release publishes: both forms of the one card just printed.
    written = json.loads((out / "model_card.json").read_text())
    assert (out / "model_card.md").read_text() == render_markdown(written)
    assert as_markdown.stdout.rstrip("\n") == render_markdown(written).rstrip("\n")
    missing = cepage("registry", "model-card", "--version", "99", env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"error: {MODEL_NAME} has no version '99' in the registry."
    ]
