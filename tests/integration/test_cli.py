"""The real `cepage` CLI on a real MLflow store: retrain, the gate, bad data, clear errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from sklearn.datasets import load_iris

from tests.support.procs import bentoml_serve, cepage, stack_env

pytestmark = pytest.mark.integration

WORSE_MODEL = ("--model", "forest", "--param", "n_estimators=1", "--param", "max_depth=1")


def client(home: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def aliases(home: Path) -> dict[str, str]:
    model = client(home).get_registered_model("cepage-classifier")
    return {alias: str(version) for alias, version in model.aliases.items()}


def served_version(url: str) -> str:
    return str(requests.get(f"{url}/metadata", timeout=10).json()["version"])


def wait_for_version(url: str, version: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served_version(url) == version:
            return
        time.sleep(0.5)
    raise AssertionError(f"service still serves {served_version(url)}, expected {version}")


def test_retrain_promotes_then_rejects_a_worse_model_and_the_service_follows(
    tmp_path: Path,
) -> None:
    env = stack_env(tmp_path)
    first = cepage("retrain", env=env)
    assert first.returncode == 0, first.stderr
    assert "[1/3] train" in first.stderr and "[3/3] package" in first.stderr
    # MLflow checks the input example without tripping on cepage's no-deserialization rule.
    assert "Got error" not in first.stdout + first.stderr, first.stderr
    assert "Built Bento cepage:" in first.stdout
    assert aliases(tmp_path) == {"champion": "1"}

    with bentoml_serve(tmp_path, extra_env={"CEPAGE_MODEL_RELOAD_SECONDS": "0.5"}) as url:
        assert served_version(url) == "1"

        better = cepage("retrain", "--param", "C=0.5", "--no-build", env=env)
        assert better.returncode == 0, better.stderr
        assert aliases(tmp_path) == {"champion": "2", "previous": "1"}
        wait_for_version(url, "2")  # picked up without a restart

        worse = cepage("retrain", *WORSE_MODEL, "--floor", "0.3", env=env)
        assert worse.returncode == 3, worse.stdout + worse.stderr
        assert "Rejected version 3" in worse.stdout
        assert "[3/3]" not in worse.stderr
        assert aliases(tmp_path) == {"champion": "2", "previous": "1", "challenger": "3"}
        reason = client(tmp_path).get_model_version("cepage-classifier", "3").tags["gate.reason"]
        assert "champion's" in reason
        time.sleep(2)
        assert served_version(url) == "2"


def test_bad_training_data_stops_before_anything_is_logged(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    data = tmp_path / "bad.csv"
    frame = load_iris(as_frame=True).frame
    frame.loc[5, "target"] = float("nan")
    frame.to_csv(data, index=False)
    done = cepage("train", "--data", str(data), "--target", "target", env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: Target column 'target' has 1 missing value(s) (first at data row 6); "
        "drop those rows or fill in their class."
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_any_csv_trains_and_a_champion_on_other_features_is_not_replaced(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    assert cepage("retrain", "--no-build", env=env).returncode == 0
    data = tmp_path / "iris.csv"
    iris = load_iris(as_frame=True)
    frame = iris.frame.assign(species=[iris.target_names[t] for t in iris.target])
    frame.drop(columns=["target"]).to_csv(data, index=False)
    trained = cepage("train", "--data", str(data), "--target", "species", env=env)
    assert trained.returncode == 0, trained.stderr
    assert "version 2" in trained.stdout
    gate = cepage("promote", env=env)
    assert gate.returncode == 3
    assert "uses other features" in gate.stdout
    assert aliases(tmp_path)["champion"] == "1"
    forced = cepage("promote", "--version", "2", "--force", env=env)
    assert forced.returncode == 0
    assert aliases(tmp_path) == {"champion": "2", "previous": "1"}


def test_package_without_store_or_champion_says_so_in_one_sentence(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    missing = cepage("package", env=env)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: No MLflow tracking store at ")
    assert "Traceback" not in missing.stderr
    assert not (tmp_path / "mlflow.db").exists()

    assert (
        cepage("train", "--floor", "0.99", env=env).returncode == 2
    )  # usage error: no such option
    assert cepage("train", env=env).returncode == 0
    no_champion = cepage("package", env=env)
    assert no_champion.returncode == 1
    assert "has no @champion" in no_champion.stderr
    assert "Traceback" not in no_champion.stderr


def test_gate_floor_rejects_a_first_model(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    assert cepage("train", *WORSE_MODEL, env=env).returncode == 0
    gate = cepage("promote", "--floor", "0.95", env=env)
    assert gate.returncode == 3
    assert "below the floor" in gate.stdout
    assert aliases(tmp_path) == {"challenger": "1"}


def test_unreachable_tracking_server_is_one_sentence(tmp_path: Path) -> None:
    env = stack_env(
        tmp_path, MLFLOW_TRACKING_URI="http://127.0.0.1:9", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"
    )
    done = cepage("package", env=env, timeout=120)
    assert done.returncode == 1
    assert "Cannot reach the MLflow tracking server at http://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr


def test_csv_written_predictions_match_the_service(
    trained_home: Path, tmp_path: Path, median_record: dict[str, float], api_url: str
) -> None:
    rows = tmp_path / "rows.csv"
    pd.DataFrame([median_record, median_record]).to_csv(rows, index=False)
    done = cepage("predict", "--csv", str(rows), "--url", api_url, env=stack_env(trained_home))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"label"') == 2


def test_registry_reports_the_champion_and_the_last_gate(trained_home: Path) -> None:
    env = stack_env(trained_home)
    champion = cepage("registry", "champion", env=env)
    assert champion.returncode == 0, champion.stderr
    version = champion.stdout.strip()
    assert version == aliases(trained_home)["champion"]

    summary = cepage("registry", "gate-summary", env=env)
    assert summary.returncode == 0, summary.stderr
    assert f"### Retrain: version {version} of `cepage-classifier` promoted" in summary.stdout
    assert f"`cepage-classifier@champion` = version {version}." in summary.stdout
    assert "| candidate (version" in summary.stdout and "Gate: first model" in summary.stdout


def test_registry_says_when_there_is_no_model(trained_home: Path) -> None:
    done = cepage(
        "registry", "champion", env=stack_env(trained_home, CEPAGE_MODEL_NAME="no-such-model")
    )
    assert done.returncode == 1, done.stdout
    last = done.stderr.strip().splitlines()[-1]  # after MLflow's own log lines
    assert last.startswith("error: No no-such-model@champion in "), last


def test_usage_errors_exit_2_and_a_bad_setting_is_one_sentence(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    force = cepage("promote", "--force", env=env)
    assert force.returncode == 2 and "error: --force needs --version." in force.stderr
    neither = cepage("predict", env=env)
    assert neither.returncode == 2 and "exactly one of --json or --csv" in neither.stderr
    bad = cepage("promote", env={**env, "CEPAGE_GATE_FLOOR": "high"})
    assert bad.returncode == 1, bad.stderr
    assert bad.stderr.strip() == "error: CEPAGE_GATE_FLOOR must be a number, not 'high'."
