"""The page's "Model card" tab, driven by AppTest against the real service: the card the service
serves, rendered as Markdown; and what the tab says for a service that has none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.ui.apps import start_app
from tests.ui.schemas import V2_BODY
from tests.ui.stand_in import Answer, stand_in
from ui.client import ApiClient, ApiError

pytestmark = pytest.mark.ui


def test_the_model_card_tab_shows_the_services_card(
    monkeypatch: pytest.MonkeyPatch, api_url: str, app_path: Path
) -> None:
    served = requests.get(f"{api_url}/model-card", timeout=10).text
    at = start_app(monkeypatch, api_url, app_path)
    [tab] = [t for t in at.tabs if t.label == "Model card"]
    assert [str(m.value).strip() for m in tab.markdown] == [served.strip()]
    assert not at.error


def test_the_client_reads_the_card_as_markdown(api_url: str) -> None:
    card = ApiClient(api_url, timeout=30).model_card()
    assert card.startswith("# Model card: cepage-classifier version ")
    assert "## Intended use and limits" in card


def test_a_service_without_a_card_is_told_not_shown_as_an_error(
    monkeypatch: pytest.MonkeyPatch, app_path: Path
) -> None:
    """A model packaged before cards existed: the service answers 404 in its own error shape."""
    no_card = json.dumps({"error": "Model m:1 has no model card: run `cepage package` again."})
    answers: dict[str, Answer] = {
        "/metadata": (200, "application/json", json.dumps(V2_BODY), {}),
        "/model-card?format=markdown": (404, "application/json", no_card, {}),
    }
    with stand_in(answers) as service:
        with pytest.raises(ApiError) as caught:
            ApiClient(service.url).model_card()
        assert caught.value.status == 404
        at = start_app(monkeypatch, service.url, app_path)
        [tab] = [t for t in at.tabs if t.label == "Model card"]
        [info] = [str(i.value) for i in tab.info]
        assert "has no model card" in info and "`cepage package`" in info
        assert not tab.error
