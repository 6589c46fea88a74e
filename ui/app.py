"""The cepage web UI: one prediction from a form, feedback, and batch scoring of a CSV file.

Run it with ``CEPAGE_API_URL=http://HOST:PORT streamlit run ui/app.py``. It talks to the model
service's HTTP API only; the form is generated from ``GET /metadata``, so it follows whatever model
the service serves. Every failure is shown as a sentence, never as a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from ui.batch import (
    ID_COLUMN,
    LABEL_COLUMN,
    OUT_OF_RANGE_COLUMN,
    PROBABILITY_PREFIX,
    BatchError,
    check_columns,
    check_values,
    read_csv,
    score_frame,
    template_csv,
    to_csv,
)
from ui.client import ApiClient, ApiError, FeatureSchema, FeedbackResult, Metadata, Prediction
from ui.form import input_spec, readable_label
from ui.settings import UiSettings, load_settings

# Session-state keys of the page's own state (distinct from the widgets' keys).
PREDICTION_KEY = "cepage.last_prediction"
FEEDBACK_KEY = "cepage.last_feedback"
BATCH_KEY = "cepage.last_batch"
FORM_COLUMNS = 3

logger = logging.getLogger("cepage.ui")


def run() -> None:
    """The page, with any unexpected error shown as a sentence (its traceback goes to the log)."""
    try:
        main()
    except Exception as exc:
        logger.exception("Unexpected error while rendering the page")
        st.error(
            f"Something went wrong in the UI ({type(exc).__name__}: {exc}). "
            "The details are in the UI's log."
        )


def main() -> None:
    """The whole page: sidebar (API URL, model), then the single and batch tabs."""
    st.set_page_config(page_title="cepage", page_icon=":grapes:", layout="wide")
    st.title("cepage")
    settings = _settings()
    if settings is None:
        return
    client = _client(settings)
    if client is None:
        return
    try:
        metadata = client.metadata()
    except ApiError as exc:
        st.error(str(exc))
        return
    _sidebar_model(metadata)
    schema = metadata.schema
    st.caption(
        f"Predicts **{readable_label(schema.target)}** ({', '.join(schema.classes)}) from "
        f"{len(schema.features)} features with {metadata.name} version {metadata.version}."
    )
    single, batch = st.tabs(["Single prediction", "Batch"])
    with single:
        _single_tab(client, metadata)
    with batch:
        _batch_tab(client, metadata)


def _settings() -> UiSettings | None:
    try:
        return load_settings()
    except ValueError as exc:
        st.error(f"The UI's configuration is invalid: {exc}")
        return None


def _client(settings: UiSettings) -> ApiClient | None:
    """The API URL input in the sidebar, and a client for it (None until the URL is usable)."""
    url = st.sidebar.text_input(
        "API URL",
        value=settings.api_url or "",
        key="api_url",
        placeholder="http://HOST:PORT",
        help="Base URL of the cepage model service (CEPAGE_API_URL fills it in at start).",
    )
    if not url.strip():
        st.info(
            "Enter the API URL in the sidebar to start: the base URL of the cepage model "
            "service, for example http://HOST:PORT. (Start the UI with CEPAGE_API_URL set to "
            "fill it in.)"
        )
        return None
    try:
        return ApiClient(url, timeout=settings.timeout_seconds, api_key=settings.api_key)
    except ApiError as exc:
        st.error(str(exc))
        return None


def _sidebar_model(metadata: Metadata) -> None:
    side = st.sidebar
    side.subheader("Model")
    side.markdown(f"**{metadata.name}** version **{metadata.version}**")
    for name, value in metadata.metrics.items():
        side.markdown(f"{readable_label(name)}: `{value:.4f}`")
    side.caption(f"Run id: `{metadata.run_id}`")
    side.caption(f"BentoML model: `{metadata.bento_model}`")
    side.caption(f"Created: {metadata.created_at}")


# --- one prediction ---------------------------------------------------------------------------


def _single_tab(client: ApiClient, metadata: Metadata) -> None:
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


# --- batch --------------------------------------------------------------------------------------


def _batch_tab(client: ApiClient, metadata: Metadata) -> None:
    schema = metadata.schema
    st.markdown(
        f"Upload a CSV file with one column per feature ({len(schema.features)} columns, "
        f"names as below). Rows are sent in requests of at most {metadata.max_records}."
    )
    with st.expander("Expected columns"):
        st.code(",".join(schema.names), language=None)
        st.download_button(
            "Download a template CSV",
            template_csv(schema),
            file_name="cepage-template.csv",
            mime="text/csv",
            on_click="ignore",
        )
    upload = st.file_uploader("CSV file", type=["csv"], key="batch_upload")
    if upload is None:
        return
    run_key = (upload.file_id, client.base_url, metadata.bento_model)
    state: dict[str, Any] | None = st.session_state.get(BATCH_KEY)
    if state is None or state["key"] != run_key:
        scored = _score_upload(client, metadata, upload.getvalue())
        if scored is None:
            return
        state = {"key": run_key, "scored": scored}
        st.session_state[BATCH_KEY] = state
    _show_scored(state["scored"], metadata.schema, upload.name)


def _score_upload(client: ApiClient, metadata: Metadata, data: bytes) -> pd.DataFrame | None:
    """Read, check and score an uploaded file; None (after showing why) when it cannot be."""
    try:
        frame = read_csv(data)
        check_columns(frame, metadata.schema)
        check_values(frame, metadata.schema)
    except BatchError as exc:
        st.error(str(exc))
        return None
    progress = st.progress(0.0, text=f"Scoring {len(frame)} rows...")

    def report(done: int, total: int) -> None:
        progress.progress(done / total, text=f"Scored {done} of {total} rows")

    try:
        scored = score_frame(
            client, frame, metadata.schema, metadata.max_records, on_progress=report
        )
    except (ApiError, BatchError) as exc:
        progress.empty()
        st.error(str(exc))
        return None
    progress.empty()
    return scored


def _show_scored(scored: pd.DataFrame, schema: FeatureSchema, file_name: str) -> None:
    """The scored table (answers first on screen; the CSV keeps the inputs first)."""
    outside = int((scored[OUT_OF_RANGE_COLUMN] != "").sum())
    counts = scored[LABEL_COLUMN].value_counts()
    summary = ", ".join(f"{label}: {count}" for label, count in counts.items())
    st.success(f"Scored {len(scored)} rows ({summary}).")
    if outside:
        st.warning(
            f"{outside} rows have values outside the training range "
            f"(column `{OUT_OF_RANGE_COLUMN}`): their predictions are less reliable."
        )
    probabilities = {f"{PROBABILITY_PREFIX}{c}": c for c in schema.classes}
    st.dataframe(
        scored,
        hide_index=True,
        column_order=[LABEL_COLUMN, *probabilities, OUT_OF_RANGE_COLUMN, *schema.names, ID_COLUMN],
        column_config={
            column: st.column_config.ProgressColumn(
                f"P({cls})", min_value=0.0, max_value=1.0, format="percent"
            )
            for column, cls in probabilities.items()
        },
    )
    stem = file_name.rsplit(".", 1)[0] or "batch"
    st.download_button(
        "Download the scored CSV",
        to_csv(scored),
        file_name=f"{stem}-scored.csv",
        mime="text/csv",
        type="primary",
        on_click="ignore",
    )


run()
