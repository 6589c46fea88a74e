"""Metrics and the confusion-matrix figure for a fitted classifier."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss


def metric_key(label: str) -> str:
    """A class label made safe for an MLflow metric name."""
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", label)


def evaluate(model: Any, features: pd.DataFrame, target: pd.Series) -> dict[str, float]:
    """Accuracy, macro-F1, log loss and per-class F1 of ``model`` on held-out rows."""
    classes = [str(c) for c in model.classes_]
    predicted = model.predict(features)
    proba = model.predict_proba(features)
    per_class = f1_score(target, predicted, labels=classes, average=None, zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(target, predicted)),
        "f1_macro": float(f1_score(target, predicted, average="macro", zero_division=0)),
        "log_loss": float(log_loss(target, proba, labels=classes)),
    }
    for label, score in zip(classes, per_class, strict=True):
        metrics[f"f1_{metric_key(label)}"] = float(score)
    return metrics


def confusion_figure(model: Any, features: pd.DataFrame, target: pd.Series) -> Any:
    """A matplotlib figure of the confusion matrix (rows: true class, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = [str(c) for c in model.classes_]
    matrix = confusion_matrix(target, model.predict(features), labels=classes)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2.5, 1.2 * len(classes) + 2))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(np.arange(len(classes)), labels=classes, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(classes)), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set_title("Confusion matrix (held-out)")
    fig.tight_layout()
    return fig
