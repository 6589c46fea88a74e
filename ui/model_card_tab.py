"""The page's third tab: the served version's model card, as the service renders it."""

from __future__ import annotations

import streamlit as st

from ui.client import ApiClient, ApiError
from ui.responses import Metadata

CARD_KEY = "cepage.model_card"


def model_card_tab(client: ApiClient, metadata: Metadata) -> None:
    """What the served version is (data, features, metrics, gate, intended use), made by
    `cepage package` from what MLflow recorded (``GET /model-card``)."""
    # Every widget change reruns the whole page, this tab included: the card is fetched once
    # per session and served model, not on each rerun.
    key = (client.base_url, metadata.bento_model)
    cached = st.session_state.get(CARD_KEY)
    if cached is not None and cached[0] == key:
        st.markdown(cached[1])
        return
    try:
        card = client.model_card()
    except ApiError as exc:
        if exc.status == 404:  # a model packaged before cards existed
            st.info(
                f"{metadata.name} version {metadata.version} has no model card: it was packaged "
                "before cards existed. `cepage package` makes one."
            )
            return
        st.error(str(exc))
        return
    # The card's text is the operator's (docs/intended-use.md) and MLflow's: Markdown only,
    # never HTML (st.markdown escapes it).
    st.session_state[CARD_KEY] = (key, card)
    st.markdown(card)
