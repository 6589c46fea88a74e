"""The UI talks to the API address its deployment gives it, never one a visitor types
(docs/ui.md, "Whom the UI talks to"), and shows a visitor nothing of another server's answers.

Each test plays the visitor of issue 16: type their own server (or an internal one) into the page,
then check, with a stand-in server that records every request, that the API key never reached it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.stand_in import SECRET_PAGE, Answer, stand_in
from ui.client import ApiClient, ApiError

pytestmark = pytest.mark.ui

TIMEOUT = 60
KEY = "the-ui-key-0123456789"


def start(app_path: Path) -> AppTest:
    at = AppTest.from_file(str(app_path), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> str:
    """Every text the page shows, sidebar included."""
    kinds = ("error", "warning", "info", "success", "markdown", "caption", "text", "code")
    return "\n".join(str(getattr(e, "value", "")) for kind in kinds for e in at.get(kind))


def type_everywhere(at: AppTest, url: str) -> None:
    """What a visitor would do: put ``url`` in every text box the page offers, sidebar included."""
    for box in [*at.text_input, *at.sidebar.text_input]:
        box.input(url)
        at.run()


def test_a_configured_address_is_shown_read_only_and_used(
    monkeypatch: pytest.MonkeyPatch, app_path: Path, api_url: str
) -> None:
    monkeypatch.setenv("CEPAGE_API_URL", api_url)
    at = start(app_path)
    assert not at.text_input and not at.sidebar.text_input, "the API address is editable"
    assert api_url in " ".join(str(c.value) for c in at.sidebar.caption)
    assert len(at.number_input) > 0, "the form of the configured service is not shown"
    assert not at.error


def test_the_key_goes_only_to_the_configured_address(
    monkeypatch: pytest.MonkeyPatch, app_path: Path
) -> None:
    with stand_in() as configured, stand_in() as visitors:
        monkeypatch.setenv("CEPAGE_API_URL", configured.url)
        monkeypatch.setenv("CEPAGE_API_KEY", KEY)
        at = start(app_path)
        type_everywhere(at, visitors.url)
        assert not at.exception
        assert visitors.seen == [], "the visitor's server got requests (and the key)"
        assert configured.seen, "the configured address was never asked"
        assert {s.path for s in configured.seen} == {"/metadata"}
        assert all(s.headers.get("Authorization") == f"Bearer {KEY}" for s in configured.seen)
        assert KEY not in shown(at)


def test_without_a_configured_address_the_page_refuses(
    monkeypatch: pytest.MonkeyPatch, app_path: Path
) -> None:
    monkeypatch.delenv("CEPAGE_API_URL", raising=False)
    monkeypatch.setenv("CEPAGE_API_KEY", KEY)
    with stand_in() as visitors:
        at = start(app_path)
        assert not at.text_input and not at.sidebar.text_input
        type_everywhere(at, visitors.url)
        assert visitors.seen == [], "a typed address got requests (and the key)"
    [error] = [str(e.value) for e in at.error]
    assert "CEPAGE_API_URL" in error
    assert not at.number_input


def test_an_upstreams_body_is_not_shown_on_the_page(
    monkeypatch: pytest.MonkeyPatch, app_path: Path
) -> None:
    forbidden: Answer = (403, "text/plain", SECRET_PAGE, {})
    with stand_in({"/metadata": forbidden}) as internal:
        monkeypatch.setenv("CEPAGE_API_URL", internal.url)
        at = start(app_path)
    page = shown(at)
    assert "HTTP 403" in page
    for fragment in ("hunter2", "internal-admin-page", "0123456789abcdef"):
        assert fragment not in page, page


@pytest.mark.parametrize(
    ("status", "media", "body"),
    [
        (403, "text/plain", SECRET_PAGE),
        (400, "text/html", f"<html><body>{SECRET_PAGE}</body></html>"),
        (409, "application/json", '{"message": "' + SECRET_PAGE + '"}'),
        (422, "application/json", '["' + SECRET_PAGE + '"]'),
        (500, "application/json", '{"detail": "' + SECRET_PAGE + '"}'),
        (
            200,
            "application/json",
            '{"name": "n", "version": "1", "max_records": 1, '
            '"feature_schema": {"classes": ["c"], "features": [{"name": "a", "max": 1, '
            '"median": 1, "min": "' + SECRET_PAGE + '"}]}}',
        ),
        (200, "text/html", SECRET_PAGE),
    ],
)
def test_an_arbitrary_answer_is_not_echoed(status: int, media: str, body: str) -> None:
    answer: Answer = (status, media, body, {})
    with stand_in({"/metadata": answer}) as upstream, pytest.raises(ApiError) as caught:
        ApiClient(upstream.url).metadata()
    message = str(caught.value)
    for fragment in ("hunter2", "internal-admin-page", "0123456789abcdef"):
        assert fragment not in message, message
    if status != 200:
        assert f"HTTP {status}" in message


def test_the_services_own_error_is_still_shown() -> None:
    answer: Answer = (400, "application/json", '{"error": "records: too many (max 2)"}', {})
    with stand_in({"/predict": answer}) as service, pytest.raises(ApiError) as caught:
        ApiClient(service.url).predict([{"a": 1.0}])
    assert "(HTTP 400): records: too many (max 2)" in str(caught.value)


def test_a_redirect_is_not_followed(monkeypatch: pytest.MonkeyPatch, app_path: Path) -> None:
    with stand_in() as elsewhere:
        moved = (302, "text/plain", "", {"Location": f"{elsewhere.url}/metadata"})
        with stand_in({"/metadata": moved}) as configured:
            monkeypatch.setenv("CEPAGE_API_URL", configured.url)
            monkeypatch.setenv("CEPAGE_API_KEY", KEY)
            at = start(app_path)
            assert configured.seen
        assert elsewhere.seen == [], "the UI followed a redirect to another address"
    [error] = [str(e.value) for e in at.error]
    assert "HTTP 302" in error
