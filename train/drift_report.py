"""The drift report (``cepage report``): a window of production traffic against the training rows
of the model, as an HTML page people can read, a small JSON summary, and an MLflow run.

The service's Prometheus metrics say, every 30 minutes, *that* a feature's mix moved (PSI on
fixed bins, docs/monitoring.md). This report says *how*, over a week: each feature's distribution
beside its training one with a statistical test, missing values, the prediction mix, and the
accuracy on the labels that came back. It is built with Evidently (the ``report`` extra), which
stays out of the service and retrain images: it is imported only by :func:`build`.

What is compared with what:

- **inputs**: every prediction logged in the window (whichever version served it) against the
  rows the model was trained on (its run's ``data/training.csv``), each in the model's form;
- **prediction mix**: *this* model's predictions on the window's inputs against its predictions
  on its training rows. Same model on both sides, so a change is the inputs' doing; the label
  distribution would also carry the model's errors. For the rows this version served, its
  predictions are what the service answered;
- **accuracy**: the labelled rows of the window (the latest label per prediction, joined like
  ``cepage dataset``) scored by this model, against the held-out rows of its training run.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from contracts import production_log as names
from contracts.features import BOOLEAN, CATEGORY, NUMERIC_KINDS, canonical_category, kind
from contracts.names import CHAMPION, TARGET_TAG
from train.errors import StepError
from train.settings import Settings

# The MLflow experiment of the reports: the training experiment's name plus this suffix
# (`cepage-monitoring` by default), so reports never crowd the training runs the gate reads.
EXPERIMENT_SUFFIX = "-monitoring"
HTML_ARTIFACT = "report/drift_report.html"
SUMMARY_ARTIFACT = "report/summary.json"
# Tags of a report run: how the UI and a person find the latest one for a model version.
KIND_TAG = "cepage.report.kind"
KIND = "drift"
MODEL_NAME_TAG = "cepage.report.model_name"
MODEL_VERSION_TAG = "cepage.report.model_version"
WINDOW_START_TAG = "cepage.report.window_start"
WINDOW_END_TAG = "cepage.report.window_end"
DRIFTED_TAG = "cepage.report.drifted_features"
# The model's answer, beside the features in the frames handed to Evidently; the true label.
PREDICTION = "prediction"
TARGET = "target"


class ReportError(StepError):
    """No report can be built; one sentence why."""


@dataclass(frozen=True)
class Window:
    """A span of UTC days, ``first`` to ``last`` inclusive."""

    first: date
    last: date

    @classmethod
    def last_days(cls, days: int, today: date | None = None) -> Window:
        """The ``days`` days ending today (UTC): 7 is today and the six days before."""
        end = today or datetime.now(UTC).date()
        return cls(end - timedelta(days=days - 1), end)

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the window."""
        return datetime(self.last.year, self.last.month, self.last.day, tzinfo=UTC) + timedelta(1)

    def __str__(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


@dataclass(frozen=True)
class FeatureDrift:
    """One column's drift test: Evidently's method, its score and threshold, the verdict."""

    name: str
    kind: str
    method: str
    score: float
    threshold: float
    drifted: bool
    missing_share: float
    reference_missing_share: float


@dataclass(frozen=True)
class DriftReport:
    """What ``cepage report`` built: where the page is and what it found."""

    html: Path
    model_name: str
    model_version: str
    window: Window
    rows: int
    reference_rows: int
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift
    prediction_mix: dict[str, dict[str, float]]
    served_by: dict[str, int]
    labelled_rows: int = 0
    accuracy: float | None = None
    reference_accuracy: float | None = None
    missing_features: tuple[str, ...] = ()
    run_id: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted) / len(self.features) if self.features else 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON summary logged beside the page (and what a script reads)."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "window": {
                "first": self.window.first.isoformat(),
                "last": self.window.last.isoformat(),
            },
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "served_by": self.served_by,
            "drifted_features": self.drifted,
            "drifted_share": self.drifted_share,
            "features": [dataclasses.asdict(f) for f in self.features],
            "prediction": dataclasses.asdict(self.prediction),
            "prediction_mix": self.prediction_mix,
            "labelled_rows": self.labelled_rows,
            "accuracy": self.accuracy,
            "reference_accuracy": self.reference_accuracy,
            "missing_features": list(self.missing_features),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class _Model:
    name: str
    version: str
    run_id: str
    target: str
    features: list[dict[str, Any]]
    estimator: Any


def build(
    settings: Settings,
    window: Window,
    *,
    version: str | None = None,
    log: str | None = None,
    out: Path | None = None,
    log_to_mlflow: bool = True,
    environ: Mapping[str, str] | None = None,
) -> DriftReport:
    """Build the report of ``window`` for ``version`` (default: the champion), write it to
    ``out`` (default ``$CEPAGE_HOME/reports/``) and log it to MLflow.

    Raises:
        ReportError: no such model, no training rows stored with it, or no prediction in the
            window.
    """
    from train.production import location_from

    environ = os.environ if environ is None else environ
    _check_evidently()  # before any work: a missing extra is one sentence, not a late traceback
    model = _model(settings, version)
    reference = _reference(model)
    location = location_from(log or settings.prediction_log)
    current, served_by, missing = _current(location, model, window, environ)
    if current.empty:
        raise ReportError(
            f"No prediction in the production log ({location}) between {window.first} and "
            f"{window.last} (UTC): nothing to compare; widen the window (--since-days, --from) "
            "or check CEPAGE_PREDICTION_LOG."
        )
    labelled = _labelled(location, current, window, environ, settings.dataset_feedback_from)

    columns = [f["name"] for f in model.features]
    ref_frame = _for_evidently(reference[columns], model.features)
    ref_frame[PREDICTION] = _predict(model, reference)
    cur_frame = _for_evidently(current[columns], model.features)
    cur_frame[PREDICTION] = _predict(model, current)
    drift_html, results = _drift_section(ref_frame, cur_frame, model.features)

    notes = []
    if missing:
        notes.append(
            f"Not in the log (CEPAGE_PREDICTION_LOG_EXCLUDE, or another version's features): "
            f"{', '.join(missing)}; compared as all missing."
        )
    quality_html, accuracy, reference_accuracy = None, None, None
    if not labelled.empty:
        quality_html, accuracy, reference_accuracy = _quality_section(
            model, labelled, _holdout(model)
        )
    else:
        notes.append("No feedback label in the window: no accuracy.")

    features = tuple(results[c] for c in columns)
    report = DriftReport(
        html=out or _default_out(settings, model, window),
        model_name=model.name,
        model_version=model.version,
        window=window,
        rows=len(current),
        reference_rows=len(reference),
        features=features,
        prediction=results[PREDICTION],
        prediction_mix={
            "reference": _shares(ref_frame[PREDICTION]),
            "current": _shares(cur_frame[PREDICTION]),
        },
        served_by=served_by,
        labelled_rows=len(labelled),
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        missing_features=tuple(missing),
        notes=tuple(notes),
    )
    report.html.parent.mkdir(parents=True, exist_ok=True)
    report.html.write_text(_page(report, drift_html, quality_html), encoding="utf-8")
    if log_to_mlflow:
        report = dataclasses.replace(report, run_id=_log(settings, report))
    return report


def _model(settings: Settings, version: str | None) -> _Model:
    """The version's run, target, feature schema and estimator (allow-listed skops file)."""
    from train.artifacts import download, feature_list, load_estimator, model_file
    from train.registry import get_alias, get_version
    from train.tracking import connect

    client = connect(settings, create=False)
    name = settings.model_name
    if version is None:
        found = get_alias(client, name, CHAMPION)
        if found is None:
            raise ReportError(
                f"{name} has no @champion: train and promote a model first, or name one with "
                "--version."
            )
    else:
        found = get_version(client, name, version)
    run = client.get_run(str(found.run_id))
    model_dir = download(f"models:/{name}/{found.version}")
    features = feature_list(model_dir)
    target = run.data.tags.get(TARGET_TAG)
    if not features or not target:
        raise ReportError(
            f"Version {found.version} was not logged by `cepage train` (no feature schema or "
            "target): it has no training reference to compare with."
        )
    estimator = load_estimator(model_file(model_dir))
    return _Model(name, str(found.version), run.info.run_id, target, features, estimator)


def _reference(model: _Model) -> pd.DataFrame:
    """The rows the version was trained on (its run's ``data/training.csv``), in model form."""
    import mlflow

    from train.schema import model_frame
    from train.training import TRAINING_DATA_ARTIFACT

    try:
        text = mlflow.artifacts.load_text(f"runs:/{model.run_id}/{TRAINING_DATA_ARTIFACT}")
    except Exception as exc:  # MLflow raises several types for a missing artifact
        raise ReportError(
            f"Version {model.version}'s run {model.run_id} has no stored training data "
            f"({TRAINING_DATA_ARTIFACT}: runs before cepage kept it), the report's reference: "
            "retrain it with `cepage train`."
        ) from exc
    # As text, typed by the schema: a category such as "007" must not come back as 7.
    rows = pd.read_csv(io.StringIO(text), dtype=str)
    frame = model_frame(rows, model.features)
    if model.target in rows.columns:
        frame[TARGET] = rows[model.target].map(canonical_category)
    return frame


def _current(
    location: Any, model: _Model, window: Window, environ: Mapping[str, str]
) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """The window's predictions, one row per id, features in model form (a feature not in the
    log is all missing); rows per serving version; the features the log lacks."""
    from train.production import read_rows
    from train.schema import model_frame

    rows = read_rows(location, names.PREDICTIONS, since_day=window.first.isoformat(),
                     environ=environ)  # fmt: skip
    if rows.empty:
        return rows, {}, []
    times = pd.to_datetime(rows[names.TIME], utc=True)
    rows = rows[(times >= window.start) & (times < window.end)]
    rows = rows.drop_duplicates(names.PREDICTION_ID, keep="last").reset_index(drop=True)
    missing = []
    inputs = pd.DataFrame(index=rows.index)
    for feature in model.features:
        column = f"{names.INPUTS}.{feature['name']}"
        if column in rows.columns:
            inputs[feature["name"]] = rows[column]
        else:
            missing.append(feature["name"])
            inputs[feature["name"]] = pd.Series(None, index=rows.index, dtype=object)
    frame = model_frame(inputs, model.features)
    frame[names.PREDICTION_ID] = rows[names.PREDICTION_ID]
    served = rows[names.MODEL_VERSION].astype(str).value_counts().sort_index()
    return frame, {str(k): int(v) for k, v in served.items()}, missing


def _labelled(
    location: Any,
    current: pd.DataFrame,
    window: Window,
    environ: Mapping[str, str],
    trusted: Sequence[str] = (),
) -> pd.DataFrame:
    """The window's predictions that got a label, with it (``target``): the latest label per
    prediction wins and, with ``trusted`` callers (CEPAGE_DATASET_FEEDBACK_FROM), counts only if
    one of them sent it, as in ``cepage dataset`` (train/production.py)."""
    from train.production import read_rows

    feedback = read_rows(location, names.FEEDBACK, since_day=window.first.isoformat(),
                         environ=environ)  # fmt: skip
    if feedback.empty:
        return current.iloc[0:0]
    latest = feedback.sort_values(names.TIME, kind="stable").drop_duplicates(
        names.PREDICTION_ID, keep="last"
    )
    if trusted:
        latest = latest[latest[names.WHO].isin(list(trusted))]
    labels = latest.set_index(names.PREDICTION_ID)[names.LABEL].map(canonical_category)
    joined = current[current[names.PREDICTION_ID].isin(labels.index)].copy()
    joined[TARGET] = joined[names.PREDICTION_ID].map(labels)
    return joined


def _holdout(model: _Model) -> pd.DataFrame | None:
    """The held-out rows of the version's run, in model form (None: not stored)."""
    from mlflow import MlflowClient

    from train.gate import load_holdout
    from train.schema import model_frame

    try:
        # The tracking URI was set by _model's connect().
        rows = load_holdout(MlflowClient(), model.run_id)
    except Exception:  # MLflow raises several types for a missing artifact: no reference then
        return None
    if rows is None or model.target not in rows.columns:
        return None
    frame = model_frame(rows, model.features)
    frame[TARGET] = rows[model.target].map(canonical_category)
    return frame


def _predict(model: _Model, rows: pd.DataFrame) -> Any:
    """The model's answers for ``rows`` (model form), as text, in the columns it was fitted on."""
    expected = list(getattr(model.estimator, "feature_names_in_", [])) or [
        f["name"] for f in model.features
    ]
    return model.estimator.predict(rows[expected]).astype(str)


def _check_evidently() -> None:
    """Evidently is the ``report`` extra: say how to get it rather than a traceback."""
    try:
        _import_evidently()
    except ImportError as exc:
        raise ReportError(
            f"`cepage report` needs Evidently (the `report` extra): pip install '.[report]' "
            f"({exc})."
        ) from exc


def _import_evidently() -> Any:
    """Import Evidently, off by default for its usage telemetry, with one pandas 3 shim.

    Evidently 0.7 imports ``infer_dtype_from_object`` from pandas' internals, which pandas 3
    removed; only its legacy column-type test calls it (this report does not). Given back as
    pandas 2 defined it (the numpy scalar type of a dtype), so the import works and that test
    would still be right.
    """
    # Evidently's telemetry stays off unless the user set DO_NOT_TRACK themselves.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from pandas.core.dtypes import common

    if not hasattr(common, "infer_dtype_from_object"):

        def infer_dtype_from_object(dtype: Any) -> Any:
            if isinstance(dtype, type):
                return dtype
            return pd.api.types.pandas_dtype(dtype).type

        common.infer_dtype_from_object = infer_dtype_from_object  # type: ignore[attr-defined]
    import evidently

    return evidently


def _for_evidently(frame: pd.DataFrame, features: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The frame as Evidently reads it: booleans as the categories ``true``/``false`` (the model
    form is 0/1), blanks as NaN."""
    out = frame.copy()
    for feature in features:
        if kind(feature) == BOOLEAN:
            out[feature["name"]] = frame[feature["name"]].map(
                lambda v: None if pd.isna(v) else ("true" if v else "false")
            )
    return out


def _definition(features: Sequence[Mapping[str, Any]], extra: Sequence[str] = ()) -> Any:
    from evidently import DataDefinition

    return DataDefinition(
        numerical_columns=[f["name"] for f in features if kind(f) in NUMERIC_KINDS],
        categorical_columns=[
            *(f["name"] for f in features if kind(f) in (CATEGORY, BOOLEAN)),
            *extra,
        ],
    )


def _drift_section(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[Mapping[str, Any]]
) -> tuple[str, dict[str, FeatureDrift]]:
    """Evidently's drift and summary presets over the features and the prediction: the page,
    and each column's test as Evidently judged it.

    Evidently picks each test by kind and the training rows' count (up to 1000 rows:
    Kolmogorov-Smirnov for numbers, chi-square for categories, a Z-test for two values; above:
    Wasserstein distance for numbers, Jensen-Shannon for categories) with its default thresholds;
    a feature has drifted when its test says so.
    """
    _import_evidently()
    from evidently import Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    columns = [f["name"] for f in features]
    definition = _definition(features, [PREDICTION])
    report = Report(
        [
            DataDriftPreset(columns=columns),
            ValueDrift(column=PREDICTION),
            DataSummaryPreset(columns=[*columns, PREDICTION]),
        ],
        include_tests=True,
    )
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    kinds = {f["name"]: kind(f) for f in features} | {PREDICTION: CATEGORY}
    found = snapshot.dict()
    # Evidently's own verdict per column: its drift test failed (p-value at or under the
    # threshold for K-S, under it for chi-square and Z, a distance at or above it).
    verdicts = {
        test["metric_config"]["params"]["column"]: getattr(test["status"], "value", test["status"])
        == "FAIL"
        for test in found.get("tests", [])
        if str(test["metric_config"]["params"].get("type", "")).endswith("ValueDrift")
    }
    results: dict[str, FeatureDrift] = {}
    for metric in found["metrics"]:
        config = metric.get("config") or {}
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        column = config["column"]
        if column not in verdicts:
            continue
        score, threshold = float(metric["value"]), float(config["threshold"])
        method = str(config["method"])
        results[column] = FeatureDrift(
            name=column,
            kind=kinds[column],
            method=method,
            score=score,
            threshold=threshold,
            drifted=verdicts[column],
            missing_share=float(current[column].isna().mean()),
            reference_missing_share=float(reference[column].isna().mean()),
        )
    missing = [c for c in [*columns, PREDICTION] if c not in results]
    if missing:
        raise ReportError(f"Evidently computed no drift test for {', '.join(missing)}.")
    return snapshot.get_html_str(as_iframe=False), results


def _quality_section(
    model: _Model, labelled: pd.DataFrame, holdout: pd.DataFrame | None
) -> tuple[str, float, float | None]:
    """Evidently's classification preset on the labelled rows (this model's answers against
    the labels), the run's held-out rows as the reference; the page and both accuracies."""
    _import_evidently()
    from evidently import (
        BinaryClassification,
        DataDefinition,
        Dataset,
        MulticlassClassification,
        Report,
    )
    from evidently.presets import ClassificationPreset

    def scored(rows: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                TARGET: rows[TARGET].astype(str).to_numpy(),
                PREDICTION: _predict(model, rows),
            }
        )

    current = scored(labelled)
    reference = scored(holdout) if holdout is not None and not holdout.empty else None
    classes = [str(c) for c in getattr(model.estimator, "classes_", [])]
    # Evidently reads two classes as a binary task, whose positive class it must be told
    # (scikit-learn's: the second of classes_); the multiclass task would look for a class 1.
    task: Any = (
        BinaryClassification(target=TARGET, prediction_labels=PREDICTION, pos_label=classes[1])
        if len(classes) == 2
        else MulticlassClassification(target=TARGET, prediction_labels=PREDICTION)
    )
    definition = DataDefinition(categorical_columns=[TARGET, PREDICTION], classification=[task])
    snapshot = Report([ClassificationPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition)
        if reference is not None
        else None,
    )
    accuracy = float((current[TARGET] == current[PREDICTION]).mean())
    reference_accuracy = (
        float((reference[TARGET] == reference[PREDICTION]).mean())
        if reference is not None
        else None
    )
    return snapshot.get_html_str(as_iframe=False), accuracy, reference_accuracy


def _shares(column: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in column.value_counts(normalize=True).sort_index().items()}


def _default_out(settings: Settings, model: _Model, window: Window) -> Path:
    stem = f"drift-{model.name}-v{model.version}-{window.first}_{window.last}"
    return settings.home / "reports" / f"{stem}.html"


def _page(report: DriftReport, drift_html: str, quality_html: str | None) -> str:
    """One self-contained page: what was compared and the verdict on top, in plain HTML, then
    Evidently's own report(s), each in an inline frame (``srcdoc``: its scripts and styles stay
    its own, and the file needs nothing else)."""
    e = html.escape
    rows = "".join(
        f"<tr class='{'drift' if f.drifted else 'ok'}'><td>{e(f.name)}</td><td>{e(f.kind)}</td>"
        f"<td>{e(f.method)}</td><td>{f.score:.4g}</td><td>{f.threshold:.4g}</td>"
        f"<td>{'drifted' if f.drifted else 'no'}</td><td>{f.missing_share:.1%}</td>"
        f"<td>{f.reference_missing_share:.1%}</td></tr>"
        for f in (*report.features, report.prediction)
    )
    mix = "".join(
        f"<tr><td>{e(label)}</td><td>{report.prediction_mix['reference'].get(label, 0.0):.1%}"
        f"</td><td>{report.prediction_mix['current'].get(label, 0.0):.1%}</td></tr>"
        for label in sorted(
            set(report.prediction_mix["reference"]) | set(report.prediction_mix["current"])
        )
    )
    accuracy = (
        "no feedback label in the window"
        if report.accuracy is None
        else f"{report.accuracy:.1%} on {report.labelled_rows} labelled rows"
        + (
            f" (held-out rows at training: {report.reference_accuracy:.1%})"
            if report.reference_accuracy is not None
            else ""
        )
    )
    served = ", ".join(f"v{k}: {v}" for k, v in report.served_by.items())
    drifted = ", ".join(report.drifted) or "none"
    notes = "".join(f"<li>{e(n)}</li>" for n in report.notes)
    frames = f"<h2>Inputs and predictions</h2>{_frame(drift_html)}"
    if quality_html is not None:
        frames += f"<h2>Accuracy on the labelled rows</h2>{_frame(quality_html)}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drift report: {e(report.model_name)} v{e(report.model_version)}, {report.window}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; }}
table {{ border-collapse: collapse; margin: .5rem 0 1rem; }}
td, th {{ border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; }}
tr.drift td {{ background: #fde2e1; }}
iframe {{ width: 100%; height: 85vh; border: 1px solid #ccc; }}
</style></head><body>
<h1>Drift report: {e(report.model_name)} version {e(report.model_version)}</h1>
<p>Window {report.window} (UTC): <b>{report.rows}</b> predictions ({e(served)}) against the
<b>{report.reference_rows}</b> rows the model was trained on.</p>
<p><b>Drifted features: {len(report.drifted)} of {len(report.features)}
({report.drifted_share:.0%})</b>: {e(drifted)}.
Prediction mix: {"drifted" if report.prediction.drifted else "no drift"}.
Accuracy: {e(accuracy)}.</p>
<ul>{notes}</ul>
<table><tr><th>column</th><th>kind</th><th>test</th><th>score</th><th>threshold</th>
<th>drift</th><th>missing (window)</th><th>missing (training)</th></tr>{rows}</table>
<table><tr><th>predicted class</th><th>training rows</th><th>window</th></tr>{mix}</table>
{frames}
</body></html>
"""


def _frame(document: str) -> str:
    return f'<iframe srcdoc="{html.escape(document, quote=True)}"></iframe>'


def _log(settings: Settings, report: DriftReport) -> str:
    """A run of its own in the monitoring experiment, tagged with the model version and the
    window: the page and the summary as artifacts, the headline figures as metrics."""
    import mlflow

    from train.tracking import connect, ensure_experiment

    client = connect(settings, create=False)
    monitoring = dataclasses.replace(settings, experiment=settings.experiment + EXPERIMENT_SUFFIX)
    experiment_id = ensure_experiment(client, monitoring)
    metrics = {
        "rows": float(report.rows),
        "drifted_features": float(len(report.drifted)),
        "drifted_share": report.drifted_share,
        "labelled_rows": float(report.labelled_rows),
    }
    if report.accuracy is not None:
        metrics["accuracy"] = report.accuracy
    run_name = f"drift {report.model_name} v{report.model_version} {report.window}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags(
            {
                KIND_TAG: KIND,
                MODEL_NAME_TAG: report.model_name,
                MODEL_VERSION_TAG: report.model_version,
                WINDOW_START_TAG: report.window.first.isoformat(),
                WINDOW_END_TAG: report.window.last.isoformat(),
                # MLflow caps a tag at 5000 characters on older servers.
                DRIFTED_TAG: ",".join(report.drifted)[:5000],
            }
        )
        mlflow.log_metrics(metrics)
        # Always under one name, whatever --out said: a link to a report needs only its run.
        mlflow.log_text(report.html.read_text(encoding="utf-8"), HTML_ARTIFACT)
        mlflow.log_text(json.dumps(report.summary(), indent=2) + "\n", SUMMARY_ARTIFACT)
    return str(run.info.run_id)
