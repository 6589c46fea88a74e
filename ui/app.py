"""The cepage web UI: one prediction from a form, feedback, and batch scoring of a CSV file.

Run it with ``CEPAGE_API_URL=http://HOST:PORT streamlit run ui/app.py``. It talks to the model
service's HTTP API only, at the address its deployment gives it (never one a visitor types: without
``CEPAGE_API_URL`` the page refuses to start); the form is generated from ``GET /metadata``, so it
follows whatever model the service serves. Every failure is shown as a sentence, never as a
traceback.
"""

from __future__ import annotations

import logging

import streamlit as st

from ui.batch_tab import batch_tab
from ui.client import ApiClient, ApiError
from ui.form import describe_feature, readable_label
from ui.model_card_tab import model_card_tab
from ui.responses import Metadata
from ui.settings import UiSettings, load_settings
from ui.single_tab import single_tab

logger = logging.getLogger("cepage.ui")

NO_API_URL = (
    "The UI has no model service to talk to: start it with CEPAGE_API_URL set to the service's "
    "base URL (for example CEPAGE_API_URL=http://127.0.0.1:3000), as `cepage up` does."
)


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
    """The whole page: sidebar (API address, model), then the single and batch tabs."""
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
    _sidebar_production(client)
    if settings.drift_reports_url:
        st.sidebar.markdown(
            f"[Drift reports]({settings.drift_reports_url}): production against the training "
            "data, the latest first (`cepage report`; operators' MLflow)"
        )
    schema = metadata.schema
    st.caption(
        f"Predicts **{readable_label(schema.target)}** ({', '.join(schema.classes)}) from "
        f"{len(schema.features)} features with {metadata.name} version {metadata.version}."
    )
    single, batch, card = st.tabs(["Single prediction", "Batch", "Model card"])
    with single:
        single_tab(client, metadata)
    with batch:
        batch_tab(client, metadata, settings)
    with card:
        model_card_tab(client, metadata)


def _settings() -> UiSettings | None:
    try:
        return load_settings()
    except ValueError as exc:
        st.error(f"The UI's configuration is invalid: {exc}")
        return None


def _client(settings: UiSettings) -> ApiClient | None:
    """A client for the configured API, its address shown read-only (None when there is none).

    The address comes from the deployment only: a visitor can neither type nor change it, so the
    API key goes nowhere else (docs/ui.md, "Whom the UI talks to").
    """
    if settings.api_url is None:
        st.error(NO_API_URL)
        return None
    try:
        client = ApiClient(
            settings.api_url, timeout=settings.timeout_seconds, api_key=settings.api_key
        )
    except ApiError as exc:
        st.error(str(exc))
        return None
    st.sidebar.caption(f"API: `{client.base_url}` (set by CEPAGE_API_URL)")
    return client


def _sidebar_model(metadata: Metadata) -> None:
    side = st.sidebar
    side.subheader("Model")
    side.markdown(f"**{metadata.name}** version **{metadata.version}**")
    for name, value in metadata.metrics.items():
        side.markdown(f"{readable_label(name)}: `{value:.4f}`")
    side.caption(f"Run id: `{metadata.run_id}`")
    side.caption(f"BentoML model: `{metadata.bento_model}`")
    side.caption(f"Created: {metadata.created_at}")
    features = metadata.schema.features
    # Below the model's identity: what each input is, what it takes, and whether it may be empty.
    with side.expander(f"Features ({len(features)})"):
        st.markdown("\n".join(f"- {describe_feature(f)}" for f in features))


def _sidebar_production(client: ApiClient) -> None:
    """What the service answered and was told, per model version: predictions, the share that
    got feedback, and how much of that feedback said the answer was right. Counts only, never
    anyone's inputs: this page is public."""
    side = st.sidebar
    side.subheader("In production")
    try:
        versions = client.production()
    except ApiError as exc:
        side.caption(f"Not available: {exc}")
        return
    if not versions:
        side.caption("No prediction yet.")
        return
    rows = [
        {
            "version": v.model_version,
            "predictions": v.predictions,
            "labelled": f"{v.labelled_share:.0%}",
            "accuracy": "—" if v.accuracy is None else f"{v.accuracy:.1%}",
        }
        for v in versions
    ]
    side.dataframe(rows, hide_index=True, use_container_width=True)
    side.caption(
        "Since this service replica started (`cepage production` reads the whole log; Grafana "
        "shows every replica). Labelled: predictions that got feedback; accuracy: the share of "
        "that feedback saying the answer was right."
    )


run()
