"""The page's first tab: a form generated from the model's schema, the answer, and feedback."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ui.client import ApiClient, ApiError
from ui.form import (
    CheckboxSpec,
    ChoiceSpec,
    InputSpec,
    describe_outside,
    input_spec,
    option_label,
    readable_label,
)
from ui.responses import (
    Explanation,
    Feature,
    FeedbackResult,
    Metadata,
    Prediction,
    Record,
    Value,
)

# Session-state keys of the tab's own state (distinct from the widgets' keys).
PREDICTION_KEY = "cepage.last_prediction"
FEEDBACK_KEY = "cepage.last_feedback"
EXPLAIN_KEY = "explain"  # the form's "Explain" checkbox
# Bars in the explanation chart: the features that moved the score most (the rest are summed).
MAX_EXPLAINED = 15
FORM_COLUMNS = 3


def single_tab(client: ApiClient, metadata: Metadata) -> None:
    record = _feature_form(metadata)
    if record is not None:
        try:
            [prediction] = client.predict([record], explain=bool(st.session_state.get(EXPLAIN_KEY)))
        except ApiError as exc:
            st.error(str(exc))
            return
        st.session_state[PREDICTION_KEY] = {
            "url": client.base_url,
            "record": record,
            "prediction": prediction,
        }
    state = st.session_state.get(PREDICTION_KEY)
    if state is not None and state["url"] == client.base_url:
        _show_prediction(metadata, state["prediction"], state["record"])
        _feedback(client, metadata, state["prediction"])


def _feature_form(metadata: Metadata) -> Record | None:
    """One input per feature of the schema, by its kind; the record when the form is submitted."""
    features = metadata.schema.features
    keys = {f.name: f"feature:{metadata.bento_model}:{f.name}" for f in features}
    with st.form("predict"):
        columns = st.columns(FORM_COLUMNS)
        for index, feature in enumerate(features):
            with columns[index % FORM_COLUMNS]:
                _input(input_spec(feature), keys[feature.name])
        st.checkbox(
            "Explain",
            key=EXPLAIN_KEY,
            help="Also show how much each feature pushed the predicted class up or down.",
        )
        submitted = st.form_submit_button("Predict", type="primary")
    if not submitted:
        return None
    return {f.name: _record_value(f, st.session_state[keys[f.name]]) for f in features}


def _input(spec: InputSpec, key: str) -> None:
    """Draw one widget of the form (its value is read back from the session state by ``key``)."""
    if isinstance(spec, ChoiceSpec):
        st.selectbox(
            spec.label,
            spec.options,
            index=spec.index,
            format_func=option_label,
            help=spec.help,
            key=key,
        )
    elif isinstance(spec, CheckboxSpec):
        st.checkbox(spec.label, value=spec.value, help=spec.help, key=key)
    else:
        # All ints for an integer feature, all floats otherwise: a pairing the overloads of
        # st.number_input cannot follow through the spec's union types, hence the untyped dict.
        numbers: dict[str, Any] = {
            "min_value": spec.min_value,
            "max_value": spec.max_value,
            "value": spec.value,
            "step": spec.step,
        }
        st.number_input(
            spec.label,
            **numbers,
            format=spec.format,
            help=spec.help,
            placeholder=spec.placeholder,
            key=key,
        )


def _record_value(feature: Feature, value: Value) -> Value:
    """A widget's value as the API's JSON expects it: whole numbers for integers, None if empty."""
    if value is None or not feature.is_numeric or isinstance(value, bool):
        return value
    if feature.is_integer:
        return round(float(value))
    return float(value)


def _show_prediction(metadata: Metadata, prediction: Prediction, record: Record) -> None:
    schema = metadata.schema
    confidence = prediction.probabilities.get(prediction.label, 0.0)
    st.success(
        f"Predicted {readable_label(schema.target).lower()}: **{prediction.label}** "
        f"(probability {confidence:.1%})"
    )
    if prediction.out_of_range:
        features = {f.name: f for f in schema.features}
        outside = [
            describe_outside(features[name], record.get(name))
            for name in prediction.out_of_range
            if name in features
        ]
        st.warning(
            "Outside the training range: "
            + "; ".join(outside)
            + ". The model has not seen such values: this prediction is less reliable."
        )
    chart = pd.DataFrame(
        {
            "class": list(schema.classes),
            "probability": [prediction.probabilities.get(c, 0.0) for c in schema.classes],
        }
    )
    st.vega_lite_chart(chart, _probability_chart(readable_label(schema.target)))
    if prediction.explanation is not None:
        _show_explanation(prediction.label, prediction.explanation)


SCORE_NAMES = {"logit": "log-odds", "probability": "probability"}


def _show_explanation(label: str, explanation: Explanation) -> None:
    """The contributions as horizontal bars, largest first, with the sum they make."""
    kind = SCORE_NAMES.get(explanation.score_kind, explanation.score_kind)
    st.markdown(f"**Why {label}?** How each feature moved the {kind} of {label}:")
    st.vega_lite_chart(_explanation_rows(explanation.contributions), _explanation_chart(kind))
    st.caption(
        f"Starting from {explanation.base:.3f} (the model's {kind} before any feature), the "
        f"contributions add up to {explanation.score:.3f}, the {kind} of {label}. Green bars "
        "push towards it, red ones away (docs/ui.md, 'Why this prediction')."
    )


def _explanation_rows(contributions: dict[str, float]) -> pd.DataFrame:
    """One bar per feature, largest change first; past :data:`MAX_EXPLAINED`, one for the rest."""
    ranked = sorted(contributions.items(), key=lambda item: -abs(item[1]))
    shown = [(readable_label(name), value) for name, value in ranked[:MAX_EXPLAINED]]
    rest = ranked[MAX_EXPLAINED:]
    if rest:
        shown.append((f"{len(rest)} other features", sum(v for _, v in rest)))
    return pd.DataFrame(
        {
            "feature": [name for name, _ in shown],
            "contribution": [value for _, value in shown],
            "direction": ["towards" if value >= 0 else "away" for _, value in shown],
        }
    )


def _explanation_chart(kind: str) -> dict[str, Any]:
    return {
        "mark": {"type": "bar", "tooltip": True},
        "height": {"step": 24},
        "encoding": {
            "y": {"field": "feature", "type": "nominal", "sort": None, "title": None},
            "x": {"field": "contribution", "type": "quantitative", "title": f"Change of {kind}"},
            "color": {
                "field": "direction",
                "type": "nominal",
                "scale": {"domain": ["towards", "away"], "range": ["#2e7d32", "#c62828"]},
                "legend": None,
            },
        },
    }


def _probability_chart(title: str) -> dict[str, Any]:
    """A horizontal bar per class on a fixed 0-100 % axis, in the schema's class order."""
    return {
        "mark": {"type": "bar", "tooltip": True},
        "height": {"step": 32},
        "encoding": {
            "y": {"field": "class", "type": "nominal", "sort": None, "title": title},
            "x": {
                "field": "probability",
                "type": "quantitative",
                "scale": {"domain": [0, 1]},
                "axis": {"format": "%"},
                "title": "Probability",
            },
        },
    }


def _feedback(client: ApiClient, metadata: Metadata, prediction: Prediction) -> None:
    classes = list(metadata.schema.classes)
    target = readable_label(metadata.schema.target).lower()
    with st.form("feedback"):
        st.markdown(f"**Was this right?** Tell the service the true {target}.")
        index = classes.index(prediction.label) if prediction.label in classes else 0
        label = st.selectbox(f"True {target}", classes, index=index, key="feedback_label")
        sent = st.form_submit_button("Send feedback")
    if sent:
        try:
            st.session_state[FEEDBACK_KEY] = client.feedback(prediction.id, str(label))
        except ApiError as exc:
            st.error(str(exc))
            return
    result: FeedbackResult | None = st.session_state.get(FEEDBACK_KEY)
    if result is not None and result.prediction_id == prediction.id:
        outcome = "correct" if result.correct else "incorrect"
        st.success(
            f"Feedback recorded as {outcome}: predicted {result.predicted}, "
            f"true {result.label} (model version {result.model_version})."
        )
