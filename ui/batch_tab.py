"""The page's second tab: score a CSV file, show and download the results."""

from __future__ import annotations

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
from ui.client import ApiClient, ApiError
from ui.form import describe_feature
from ui.responses import FeatureSchema, Metadata
from ui.settings import UiSettings

# Session-state key of the tab's own state (distinct from the widgets' keys).
BATCH_KEY = "cepage.last_batch"


def batch_tab(client: ApiClient, metadata: Metadata, settings: UiSettings) -> None:
    schema = metadata.schema
    st.markdown(
        f"Upload a CSV file with one column per feature ({len(schema.features)} columns, "
        "names as below). Cells are read as written: numbers, text categories, yes/no (or "
        "true/false, 1/0), and blank cells in the columns that may be empty. Rows are sent in "
        f"requests of at most {metadata.max_records}."
    )
    with st.expander("Expected columns"):
        # The header as a CSV writes it (a name holding a comma is quoted).
        st.code(pd.DataFrame(columns=schema.names).to_csv(index=False).strip(), language=None)
        st.markdown("\n".join(f"- {describe_feature(f)}" for f in schema.features))
        st.download_button(
            "Download a template CSV",
            template_csv(schema),
            file_name="cepage-template.csv",
            mime="text/csv",
            on_click="ignore",
        )
    upload = st.file_uploader(
        "CSV file",
        type=["csv"],
        key="batch_upload",
        max_upload_size=settings.max_upload_mb,
        help=f"At most {settings.max_upload_mb} MB and {settings.max_batch_rows:,} rows.",
    )
    if upload is None:
        return
    run_key = (upload.file_id, client.base_url, metadata.bento_model)
    state: dict[str, Any] | None = st.session_state.get(BATCH_KEY)
    if state is None or state["key"] != run_key:
        scored = _score_upload(client, metadata, upload.getvalue(), settings)
        if scored is None:
            return
        state = {"key": run_key, "scored": scored}
        st.session_state[BATCH_KEY] = state
    _show_scored(state["scored"], metadata.schema, upload.name)


def _score_upload(
    client: ApiClient, metadata: Metadata, data: bytes, settings: UiSettings
) -> pd.DataFrame | None:
    """Read, check and score an uploaded file; None (after showing why) when it cannot be."""
    try:
        frame = read_csv(
            data,
            max_bytes=settings.max_upload_mb * 1_000_000,
            max_rows=settings.max_batch_rows,
        )
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
            f"{outside} rows have values outside the training range or categories not seen in "
            f"training (column `{OUT_OF_RANGE_COLUMN}`): their predictions are less reliable."
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
