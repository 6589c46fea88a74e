"""The page's first tab: a form generated from the model's schema, the answer, and feedback."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ui.client import ApiClient, ApiError
from ui.form import input_spec, readable_label
from ui.responses import FeedbackResult, Metadata, Prediction

# Session-state keys of the tab's own state (distinct from the widgets' keys).
PREDICTION_KEY = "cepage.last_prediction"
FEEDBACK_KEY = "cepage.last_feedback"
FORM_COLUMNS = 3


def single_tab(client: ApiClient, metadata: Metadata) -> None:
    record = _feature_form(metadata)
    if record is not None:
        try:
            [prediction] = client.predict([record])
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


def _feature_form(metadata: Metadata) -> dict[str, float] | None:
    """One number input per feature of the schema; the record when the form is submitted."""
    features = metadata.schema.features
    keys = {f.name: f"feature:{metadata.bento_model}:{f.name}" for f in features}
    with st.form("predict"):
        columns = st.columns(FORM_COLUMNS)
        for index, feature in enumerate(features):
            spec = input_spec(feature)
            columns[index % FORM_COLUMNS].number_input(
                spec.label,
                min_value=spec.min_value,
                max_value=spec.max_value,
                value=spec.value,
                step=spec.step,
                format=spec.format,
                help=spec.help,
                key=keys[feature.name],
            )
        submitted = st.form_submit_button("Predict", type="primary")
    if not submitted:
        return None
    return {name: float(st.session_state[key]) for name, key in keys.items()}


def _show_prediction(metadata: Metadata, prediction: Prediction, record: dict[str, float]) -> None:
    schema = metadata.schema
    confidence = prediction.probabilities.get(prediction.label, 0.0)
    st.success(
        f"Predicted {readable_label(schema.target).lower()}: **{prediction.label}** "
        f"(probability {confidence:.1%})"
    )
    if prediction.out_of_range:
        features = {f.name: f for f in schema.features}
        outside = [
            f"{readable_label(name)} = {record.get(name, float('nan')):g} "
            f"(training range {features[name].min:g} to {features[name].max:g})"
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
