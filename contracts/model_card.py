"""The model card: what a registered version is, as a JSON document and its Markdown rendering.

Packaging builds the JSON from what MLflow recorded (``train/model_card.py``), stores both forms
as artifacts of the version's run and carries the JSON inside the BentoML model (its metadata,
key :data:`METADATA_KEY`); the service renders the Markdown with :func:`render_markdown` for
``GET /model-card``, so the text served is the text stored. Standard library only: this module is
copied into every image.

The document (``card_version`` 1), every section always present (``null`` when not recorded):

- ``model``: ``name``, ``version``, ``run_id``, ``created_at``, ``aliases``, ``estimator``
  (``linear``/``forest``), ``model_sha256`` (recorded at promotion);
- ``data``: ``name``, ``source``, ``target``, ``classes``, ``rows`` (``training``, ``held_out``),
  ``class_counts`` (every row the run saw), ``training_digest``/``held_out_digest`` (MLflow's
  dataset digests), ``stored_rows_sha256`` (SHA-256 of the rows the run stored), ``snapshot``
  (the ``cepage.dataset.*`` tags of a set built from production);
- ``features``: per feature ``name``, ``kind``, ``nullable``, ``missing_share`` and its range
  (``min``, ``median``, ``max``), ``categories`` or ``true_share``, from the feature schema;
- ``metrics``: ``overall`` (as logged by training), ``per_class`` (``precision``, ``recall``,
  ``f1``, ``support``) and ``confusion_matrix`` (``labels``; ``counts`` rows are true classes,
  columns predicted) on the run's held-out rows, ``held_out_rows``;
- ``gate``: ``decision`` (``promoted``/``rejected``/``null`` never judged), ``reason``,
  ``candidate_f1``, ``champion_f1`` and the production check's figures;
- ``training``: ``params`` (the run's parameters);
- ``intended_use``: ``path`` (in the repository), ``sha256`` and ``markdown`` (the text the
  user wrote there when the card was made).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

CARD_VERSION: Final = 1
# Where the two forms are stored on the version's run (MLflow artifacts).
CARD_JSON_ARTIFACT: Final = "model_card/model_card.json"
CARD_MARKDOWN_ARTIFACT: Final = "model_card/model_card.md"
# The BentoML model's metadata key holding the JSON document (as a JSON string: exact round trip).
METADATA_KEY: Final = "model_card"
# The user's text, relative to the project directory (CEPAGE_PROJECT_DIR).
INTENDED_USE_PATH: Final = "docs/intended-use.md"
# Categories listed per feature in the Markdown (the JSON has them all).
SHOWN_CATEGORIES: Final = 8


def render_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown: identity, intended use, data, features, metrics, gate, parameters."""
    model = card.get("model") or {}
    lines = [
        f"# Model card: {_dash(model.get('name'))} version {_dash(model.get('version'))}",
        "",
        f"Generated {_dash(card.get('generated_at'))} from the MLflow run "
        f"{_dash(_code(model.get('run_id')))}.",
        "",
        *_pairs(
            [
                ("Estimator", model.get("estimator")),
                ("Registered", model.get("created_at")),
                ("Aliases", ", ".join(model.get("aliases") or []) or "none"),
                ("Model file SHA-256", _code(model.get("model_sha256"))),
            ]
        ),
        "",
        "## Intended use and limits",
        "",
    ]
    intended = card.get("intended_use") or {}
    text = str(intended.get("markdown") or "").strip()
    lines.append(text or f"Not written yet: edit `{intended.get('path') or INTENDED_USE_PATH}`.")
    lines += ["", *_data(card.get("data") or {}), *_features(card.get("features") or [])]
    lines += [*_metrics(card.get("metrics") or {}), *_gate(card.get("gate") or {})]
    params = (card.get("training") or {}).get("params") or {}
    lines += ["## Training parameters", ""]
    lines += _table(["parameter", "value"], [[k, _code(v)] for k, v in sorted(params.items())])
    return "\n".join(lines).rstrip() + "\n"


def _data(data: Mapping[str, Any]) -> list[str]:
    rows = data.get("rows") or {}
    counts = data.get("class_counts") or {}
    classes = ", ".join(
        f"{c} ({counts[c]})" if c in counts else str(c) for c in data.get("classes") or []
    )
    snapshot = data.get("snapshot") or {}
    pairs = [
        ("Data set", data.get("name")),
        ("Source", _code(data.get("source"))),
        ("Target", _code(data.get("target"))),
        ("Classes (rows)", classes),
        ("Rows", f"{_dash(rows.get('training'))} training, {_dash(rows.get('held_out'))} held out"),
        ("MLflow dataset digests", f"training {_dash(_code(data.get('training_digest')))}, "
         f"held out {_dash(_code(data.get('held_out_digest')))}"),
        ("Stored rows SHA-256", _code(data.get("stored_rows_sha256"))),
        *[(key, _code(value)) for key, value in sorted(snapshot.items())],
    ]  # fmt: skip
    return ["## Data", "", *_pairs(pairs), ""]


def _features(features: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for feature in features:
        if feature.get("categories") is not None:
            known = [str(c) for c in feature["categories"]]
            more = len(known) - SHOWN_CATEGORIES
            values = ", ".join(known[:SHOWN_CATEGORIES]) + (f" (+{more} more)" if more > 0 else "")
        elif feature.get("true_share") is not None:
            values = f"true on {feature['true_share']:.1%} of rows"
        else:
            low, high = _num(feature.get("min")), _num(feature.get("max"))
            values = f"{low} to {high} (median {_num(feature.get('median'))})"
        blank = f"{feature.get('missing_share', 0.0):.1%}" if feature.get("nullable") else "never"
        rows.append([_code(feature.get("name")), feature.get("kind"), values, blank])
    header = ["feature", "kind", "training range or values", "blank in training"]
    return ["## Features", "", *_table(header, rows), ""]


def _metrics(metrics: Mapping[str, Any]) -> list[str]:
    overall = metrics.get("overall") or {}
    lines = [
        "## Metrics",
        "",
        f"On the {_dash(metrics.get('held_out_rows'))} held-out rows of the training run.",
        "",
        *_table(["metric", "value"], [[k, _num(v)] for k, v in sorted(overall.items())]),
        "",
    ]
    per_class = metrics.get("per_class") or {}
    rows = [
        [
            label,
            _num(m.get("precision")),
            _num(m.get("recall")),
            _num(m.get("f1")),
            m.get("support"),
        ]
        for label, m in per_class.items()
    ]
    lines += _table(["class", "precision", "recall", "F1", "held-out rows"], rows) + [""]
    matrix = metrics.get("confusion_matrix") or {}
    labels = [str(label) for label in matrix.get("labels") or []]
    if labels:
        lines += ["Confusion matrix (rows: true class, columns: predicted):", ""]
        counts = matrix.get("counts") or []
        lines += _table(
            ["true \\ predicted", *labels],
            [[label, *row] for label, row in zip(labels, counts, strict=False)],
        )
        lines.append("")
    return lines


def _gate(gate: Mapping[str, Any]) -> list[str]:
    decision = gate.get("decision")
    pairs = [
        ("Decision", decision or "never judged by the gate"),
        ("Reason", gate.get("reason")),
        ("Candidate macro-F1", _num(gate.get("candidate_f1"))),
        ("Champion macro-F1 (same rows)", _num(gate.get("champion_f1"))),
    ]
    if gate.get("production_rows") is not None:
        pairs += [
            ("Recent labelled production rows", gate.get("production_rows")),
            ("Candidate macro-F1 on them", _num(gate.get("candidate_production_f1"))),
            ("Champion macro-F1 on them", _num(gate.get("champion_production_f1"))),
        ]
    return ["## Promotion gate", "", *_pairs(pairs), ""]


def _pairs(pairs: Sequence[tuple[str, Any]]) -> list[str]:
    return [f"- **{key}**: {'—' if value is None else value}" for key, value in pairs]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return ["(none recorded)"]
    lines = [_row(header), "|" + "---|" * len(header)]
    lines += [_row(row) for row in rows]
    return lines


def _row(cells: Sequence[Any]) -> str:
    # A pipe in a feature name or category would end the cell.
    return "| " + " | ".join("—" if c is None else str(c).replace("|", "\\|") for c in cells) + " |"


def _dash(value: Any) -> str:
    return "—" if value is None else str(value)


def _code(value: Any) -> str | None:
    return None if value is None else f"`{value}`"


def _num(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        # A range's bound as written (1680, not 1.68e+03); other figures to 4 digits.
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return str(value)
