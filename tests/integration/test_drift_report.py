"""`cepage report` on a real log of shifted traffic: the shifted features, and only they, are
flagged; the page and the MLflow run are there; an empty window is a clear error.

The champion is the mixed-data one (examples/customers.csv: every feature kind and blanks),
trained by the real CLI. The traffic is its own training rows resampled, with the monthly charges
moved up by four standard deviations and the region mix turned towards one region; the other
four features are left as trained on. It is written by the service's own writer
(bento/production_log.py), with feedback labels for some predictions, and rows older than the
window with every feature moved, which the window must leave out.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Counter

from bento.production_log import FeedbackRow, PredictionRow, ProductionLog
from bento.settings import ProductionLogSettings
from contracts.features import kind
from contracts.production_log import LogLocation
from stack.home import cepage, stack_env
from tests.support.mixed_data import CALLS, CHARGES, PAPERLESS, PLAN, REGION, TARGET, TENURE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHIFTED = (CHARGES, REGION)
UNCHANGED = (CALLS, PAPERLESS, PLAN, TENURE)
ROWS = 300
LABELLED = 60


def _schema(home: Path) -> list[dict[str, Any]]:
    """The champion's features, read back from its stored schema the way the service does."""
    import mlflow

    from train.artifacts import download, feature_list

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    features = feature_list(download("models:/cepage-classifier@champion"))
    assert features is not None
    return features


def _typed(value: Any, feature: dict[str, Any]) -> Any:
    """A CSV cell as the service receives it: numbers, booleans and text; None for a blank."""
    if pd.isna(value):
        return None
    if kind(feature) == "boolean":
        return str(value).strip().lower() in {"yes", "true", "1"}
    if kind(feature) in ("number", "integer"):
        return float(value)
    return str(value)


def _write_log(root: Path, source: pd.DataFrame, features: list[dict[str, Any]]) -> None:
    """Shifted traffic now, labels for some of it, and moved traffic three weeks ago."""
    rng = np.random.default_rng(11)
    traffic = source.sample(ROWS, replace=True, random_state=3).reset_index(drop=True)
    charges = pd.to_numeric(source[CHARGES])
    traffic[CHARGES] = pd.to_numeric(traffic[CHARGES]) + 4 * charges.std()
    traffic[REGION] = rng.choice(["north", "south", "east", "west"], ROWS, p=[0.7, 0.1, 0.1, 0.1])
    old = source.sample(100, random_state=5).reset_index(drop=True)
    for feature in features:  # every feature far off: only a window that leaks would see it
        if kind(feature) in ("number", "integer"):
            old[feature["name"]] = pd.to_numeric(old[feature["name"]]) * 10 + 1000

    registry = CollectorRegistry()
    counter = Counter("rows", "rows", ["log", "outcome"], registry=registry)
    log = ProductionLog(
        ProductionLogSettings(location=LogLocation("file", str(root)), flush_seconds=0.2),
        counter,
    ).start()
    now = time.time()
    names_ = [f["name"] for f in features]
    kinds = [kind(f) for f in features]

    def rows(frame: pd.DataFrame, prefix: str, at: float) -> list[PredictionRow]:
        return [
            PredictionRow(
                features=names_,
                kinds=kinds,
                prediction_id=f"{prefix}{i}",
                time=at + i * 0.01,
                model_name="cepage-classifier",
                model_version="1",
                label="stayed",
                probabilities={"stayed": 0.5, "left": 0.5},
                out_of_range=[],
                inputs={f["name"]: _typed(record[f["name"]], f) for f in features},
            )
            for i, record in enumerate(frame.to_dict("records"))
        ]

    log.add_predictions(rows(traffic, "now-", now - 3600))
    log.add_predictions(rows(old, "old-", now - 21 * 86400))
    for i in range(LABELLED):
        label = str(traffic.loc[i, TARGET])
        log.add_feedback(FeedbackRow(f"now-{i}", now - 60, label, "stayed", "1", "anonymous"))
    assert log.close(30)


@pytest.fixture(scope="module")
def report(mixed_home: Path, mixed_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("production-log")
    source = pd.read_csv(mixed_csv, dtype=str, keep_default_na=True)
    _write_log(root, source, _schema(mixed_home))
    out = tmp_path_factory.mktemp("report") / "drift.html"
    done = cepage(
        "report", "--log", str(root), "--out", str(out), env=stack_env(mixed_home), timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, out, mixed_home, root


def test_flags_exactly_the_shifted_features(report: Any) -> None:
    done, _, _, _ = report
    line = next(x for x in done.stdout.splitlines() if x.startswith("Drifted features:"))
    flagged = set(line.split(": ", 2)[2].split(", "))
    assert flagged == set(SHIFTED), done.stdout
    assert "2 of 6 (33%)" in line
    # The window holds the recent rows only (the old ones would move every feature).
    assert f" {ROWS} predictions (v1: {ROWS})" in done.stdout
    assert f"on {LABELLED} labelled rows" in done.stdout


def test_page_names_the_drifted_features(report: Any) -> None:
    _, out, _, _ = report
    page = out.read_text(encoding="utf-8")
    head = page.split("<iframe", 1)[0]
    for name in SHIFTED:
        assert f"<tr class='drift'><td>{name}</td>" in head
    for name in UNCHANGED:
        assert f"<tr class='ok'><td>{name}</td>" in head
    # Evidently's own report is inside, its plots' data with it.
    assert page.count("<iframe srcdoc=") == 2  # inputs, and accuracy on the labels
    assert "Drifted features: 2 of 6" in head


def test_logged_to_a_monitoring_run(report: Any) -> None:
    import mlflow
    from mlflow import MlflowClient

    _, _, home, _ = report
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cepage-monitoring")
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`cepage.report.model_version` = '1'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert runs, "no report run"
    run = runs[0]
    assert run.data.tags["cepage.report.kind"] == "drift"
    assert set(run.data.tags["cepage.report.drifted_features"].split(",")) == set(SHIFTED)
    assert run.data.metrics["rows"] == ROWS
    listed = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert listed == {"report/drift_report.html", "report/summary.json"}
    mlflow.set_tracking_uri(uri)
    summary = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/report/summary.json"))
    assert set(summary["drifted_features"]) == set(SHIFTED)
    assert summary["labelled_rows"] == LABELLED
    assert 0.0 <= summary["accuracy"] <= 1.0


def test_an_empty_window_is_an_error(report: Any, tmp_path: Path) -> None:
    _, _, home, log_root = report
    done = cepage(
        "report", "--log", str(log_root), "--from", "2020-01-01", "--to", "2020-01-07",
        "--out", str(tmp_path / "none.html"), env=stack_env(home),
    )  # fmt: skip
    assert done.returncode == 1
    assert "No prediction in the production log" in done.stderr
    assert "2020-01-01" in done.stderr
    assert not (tmp_path / "none.html").exists()


def test_accuracy_counts_only_trusted_callers_labels(report: Any, tmp_path: Path) -> None:
    """With CEPAGE_DATASET_FEEDBACK_FROM naming callers, the anonymous labels of this log are not
    counted, as `cepage dataset` would not train on them."""
    _, _, home, log_root = report
    done = cepage(
        "report", "--log", str(log_root), "--out", str(tmp_path / "trusted.html"), "--no-mlflow",
        env=stack_env(home, CEPAGE_DATASET_FEEDBACK_FROM="key:0123456789ab"), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Accuracy:" not in done.stdout, done.stdout  # no trusted label: no accuracy
