"""The trainable pipelines side by side: quality, single-row latency, fit time, size.

``python -m bench.models`` fits every pipeline of ``train.pipeline`` (linear, forest) on the wine
data with the same seed and the same stratified split as ``cepage train``, and prints held-out
accuracy and macro-F1, the latency of ``predict_proba`` on one row in the form the service gives
it (a float array; a one-row DataFrame for a mixed-data model's ColumnTransformer), the fit time
and the pickled size. ``--data CSV --target COLUMN`` runs it on another data set (e.g.
``examples/customers.csv``, target ``churned?``). ``--write PATH`` puts the table into the docs.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.cpu import QUIET_SHARE, background_share, snapshot, wait_for_quiet
from bench.floor import time_calls
from bench.report import describe_machine, write_between_markers
from bench.stats import percentile

if TYPE_CHECKING:
    from train.data import Dataset

Split = tuple[Any, Any, Any, Any]
MARKERS = "bench-models"
HEADING = "Latest run of `python -m bench.models`"


@dataclass(frozen=True)
class ModelFigures:
    """One pipeline's figures."""

    name: str
    accuracy: float
    f1_macro: float
    cv_f1_mean: float
    cv_f1_std: float
    p50_ms: float
    p99_ms: float
    calls: int
    fit_s: float
    size_kib: float


def cross_validated_f1(
    name: str, dataset: Dataset, seed: int, folds: int, features: Any = None
) -> tuple[float, float]:
    """Macro-F1 over stratified ``folds``-fold cross-validation (mean, standard deviation).

    The held-out split is small (45 rows of wine): every fold scores all of the data once, so
    models that tie on the held-out rows can still be told apart.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from train.pipeline import build_pipeline

    scores = cross_val_score(
        build_pipeline(name, {}, seed, features),
        dataset.features,
        dataset.target,
        cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed),
        scoring="f1_macro",
    )
    return float(np.mean(scores)), float(np.std(scores))


def measure_model(
    name: str,
    dataset: Dataset,
    parts: Split,
    seed: int,
    *,
    calls: int,
    duration_s: float,
    fits: int,
    folds: int,
    features: Any = None,
) -> ModelFigures:
    """Fit ``name`` ``fits`` times (median time), score the held-out rows, time one-row calls.

    ``features`` is the feature schema's list: it chooses the pipeline's preparation, as in
    ``cepage train``.
    """
    from bento.predictor import strip_feature_names
    from contracts.features import takes_array
    from train.evaluate import evaluate
    from train.pipeline import build_pipeline

    x_train, x_test, y_train, y_test = parts
    fit_times = []
    pipeline: Any = None
    for _ in range(max(fits, 1)):
        pipeline = build_pipeline(name, {}, seed, features)
        began = time.perf_counter()
        pipeline.fit(x_train, y_train)
        fit_times.append(time.perf_counter() - began)
    metrics = evaluate(pipeline, x_test, y_test)
    served = strip_feature_names(pipeline)
    if features is None or takes_array(features):
        row: Any = np.ascontiguousarray(x_test.to_numpy(dtype="float64")[:1])
    else:
        row = x_test.head(1)  # the ColumnTransformer picks its columns by name
    samples, _ = time_calls(
        lambda: served.predict_proba(row), duration_s=duration_s, max_calls=calls
    )
    cv_mean, cv_std = cross_validated_f1(name, dataset, seed, folds, features)
    return ModelFigures(
        name=name,
        accuracy=metrics["accuracy"],
        f1_macro=metrics["f1_macro"],
        cv_f1_mean=cv_mean,
        cv_f1_std=cv_std,
        p50_ms=percentile(samples, 50) * 1000,
        p99_ms=percentile(samples, 99) * 1000,
        calls=len(samples),
        fit_s=float(np.median(fit_times)),
        size_kib=len(pickle.dumps(served)) / 1024,
    )


def models_table(figures: Sequence[ModelFigures]) -> str:
    """One markdown table, a row per pipeline."""
    lines = [
        "| model | held-out accuracy | held-out macro-F1 | CV macro-F1 (mean ± sd) "
        "| predict_proba p50 ms (1 row) | p99 ms | fit s | pickled KiB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.name} | {f.accuracy:.4f} | {f.f1_macro:.4f} "
            f"| {f.cv_f1_mean:.4f} ± {f.cv_f1_std:.4f} | {f.p50_ms:.3f} "
            f"| {f.p99_ms:.3f} | {f.fit_s:.3f} | {f.size_kib:,.0f} |"
        )
    return "\n".join(lines)


def comparison(figures: Sequence[ModelFigures]) -> list[str]:
    """What the figures say about the default (linear) vs the others."""
    by_name = {f.name: f for f in figures}
    linear = by_name.get("linear")
    lines = []
    for other in figures:
        if linear is None or other.name == "linear":
            continue
        spread = max(linear.cv_f1_std, other.cv_f1_std)
        lines.append(
            f"- linear vs {other.name}: held-out macro-F1 {linear.f1_macro:.4f} vs "
            f"{other.f1_macro:.4f} ({_compare(linear.f1_macro, other.f1_macro)}); CV macro-F1 "
            f"{linear.cv_f1_mean:.4f} vs {other.cv_f1_mean:.4f} "
            f"({_compare(linear.cv_f1_mean, other.cv_f1_mean, spread)}); one-row predict_proba p50 "
            f"{linear.p50_ms:.3f} vs {other.p50_ms:.3f} ms "
            f"(linear {other.p50_ms / linear.p50_ms:.0f}x faster); fit {linear.fit_s:.3f} vs "
            f"{other.fit_s:.3f} s."
        )
    return lines


def _compare(linear: float, other: float, spread: float = 1e-9) -> str:
    """Which is better, or a tie when the gap is within ``spread`` (e.g. one CV standard dev)."""
    if abs(linear - other) <= spread:
        return "tie" if spread <= 1e-9 else "within one standard deviation"
    return "linear better" if linear > other else "linear worse"


def render(
    figures: Sequence[ModelFigures], data: str, seed: int, test_size: float, background: float
) -> str:
    machine = describe_machine()
    keep = ("CPU", "cores", "Python", "scikit-learn", "numpy", "OPENBLAS_CORETYPE", "date")
    head = "Machine: " + "; ".join(f"{k} {machine[k]}" for k in keep)
    run = (
        f"Run: {data}, seed {seed}, stratified held-out share "
        f"{test_size:g} (as `cepage train`); latency over {min(f.calls for f in figures):,}+ "
        "calls on one row as the service passes it, after 200 warm-up calls; fit time: median "
        "of the fits; CV: "
        f"stratified k-fold on all rows, same seed. Other processes used {background:.0%} of "
        "the CPUs meanwhile."
    )
    return "\n".join([head, "", run, "", models_table(figures), "", *comparison(figures)])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.models``."""
    from train.data import load_dataset
    from train.pipeline import MODELS
    from train.schema import build_feature_schema
    from train.training import split

    parser = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__)
    parser.add_argument("--seed", type=int, default=42, help="Split and estimator seed (42).")
    parser.add_argument("--test-size", type=float, default=0.25, help="Held-out share (0.25).")
    parser.add_argument("--calls", type=int, default=5000, help="One-row calls per model (5000).")
    parser.add_argument("--duration", type=float, default=10.0, help="Max seconds of calls (10).")
    parser.add_argument("--fits", type=int, default=3, help="Fits per model for the time (3).")
    parser.add_argument("--folds", type=int, default=5, help="Cross-validation folds (5).")
    parser.add_argument(
        "--settle", type=float, default=30.0, help="Wait up to this long for a quiet machine (30)."
    )
    parser.add_argument("--data", type=Path, help="A CSV instead of the wine data.")
    parser.add_argument("--target", help="The column to predict (with --data).")
    parser.add_argument("--write", type=Path, help="Markdown file to write the results into.")
    args = parser.parse_args(argv)
    if args.settle > 0 and wait_for_quiet(args.settle) >= QUIET_SHARE:
        print("[bench] the machine is still busy; measuring anyway", file=sys.stderr)
    before = snapshot()
    dataset = load_dataset(args.data, args.target)
    features = build_feature_schema(dataset)["features"]
    parts = split(dataset, args.seed, args.test_size)
    rows, columns = dataset.features.shape
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(Counter(dataset.kinds.values()).items()))
    data = f"{dataset.name} data ({rows} rows, {columns} features: {kinds})"
    figures = [
        measure_model(
            name,
            dataset,
            parts,
            args.seed,
            folds=args.folds,
            calls=args.calls,
            duration_s=args.duration,
            fits=args.fits,
            features=features,
        )
        for name in MODELS
    ]
    block = render(figures, data, args.seed, args.test_size, background_share(before, snapshot()))
    print(block)
    if args.write:
        write_between_markers(args.write, MARKERS, block, HEADING)
        print(f"[bench] wrote the results into {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
