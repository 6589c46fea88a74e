"""A small typed client for the model service's HTTP API.

Every failure (network, HTTP status, unexpected body) becomes one exception type, :class:`ApiError`,
whose message is a sentence a person can act on: the page shows it as is.

A message never repeats what another server said: only the cepage service's own error shape (a JSON
object with an ``error`` string, and pydantic-style ``detail``) is quoted; any other answer is told
by its status and a sentence of ours. Redirects are not followed: the client talks to its base URL
only (docs/ui.md, "Whom the UI talks to").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import requests

from contracts.production_log import VersionCounts
from ui.responses import (
    FeedbackResult,
    Metadata,
    Prediction,
    Value,
    parse_metadata,
    parse_prediction,
)

MAX_DETAILS_SHOWN = 5


class ApiError(Exception):
    """A request to the model service failed; ``str(error)`` says why, for a person.

    Attributes:
        status: The HTTP status, or None when no answer came back.
        fields: The names of the fields the service complained about (from ``detail[].loc``).
    """

    def __init__(self, message: str, *, status: int | None = None, fields: Sequence[str] = ()):
        super().__init__(message)
        self.message = message
        self.status = status
        self.fields = tuple(fields)

    def __str__(self) -> str:
        return self.message


# `name{a="x",b="y"} 12.0` lines of the Prometheus text format.
_SAMPLE = re.compile(r"^(cepage_predictions_total|cepage_feedback_total)\{([^}]*)\}\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_counts(text: str) -> list[VersionCounts]:
    """Per model version: predictions, feedback received and how much of it said "correct",
    from the service's ``/metrics`` (its counters: ``cepage_predictions_total``,
    ``cepage_feedback_total``)."""
    predictions: dict[str, float] = {}
    labelled: dict[str, float] = {}
    correct: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group(2)))
        version = labels.get("model_version", "")
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        if match.group(1) == "cepage_predictions_total":
            predictions[version] = predictions.get(version, 0.0) + value
        else:
            labelled[version] = labelled.get(version, 0.0) + value
            if labels.get("outcome") == "correct":
                correct[version] = correct.get(version, 0.0) + value
    versions = sorted(set(predictions) | set(labelled), key=lambda v: (len(v), v))
    return [
        VersionCounts(
            v, int(predictions.get(v, 0)), int(labelled.get(v, 0)), int(correct.get(v, 0))
        )
        for v in versions
        if predictions.get(v, 0) or labelled.get(v, 0)
    ]


def normalize_url(url: str) -> str:
    """The API base URL without surrounding spaces or a trailing slash.

    Raises:
        ApiError: the URL is empty or not an http(s) URL with a host.
    """
    text = url.strip().rstrip("/")
    if not text:
        raise ApiError("Enter the model API's URL (for example http://HOST:PORT).")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(
            f"{text!r} is not a valid API URL: it should look like http://HOST:PORT "
            "(with http:// or https://)."
        )
    return text


class ApiClient:
    """Calls ``GET /metadata``, ``POST /predict``, ``POST /feedback``, ``GET /model-card`` and
    ``GET /metrics`` of one service."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        api_key: str | None = None,
    ) -> None:
        self.base_url = normalize_url(base_url)
        self.timeout = timeout
        self._session = session or requests.Session()
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"

    def metadata(self) -> Metadata:
        """The served model, its metrics and its feature schema."""
        body = self._request("GET", "/metadata")
        try:
            return parse_metadata(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unexpected("/metadata", exc) from None

    def predict(
        self, records: Sequence[Mapping[str, Value]], *, explain: bool = False
    ) -> list[Prediction]:
        """Score ``records`` (each maps feature names to their JSON values), in order; with
        ``explain``, each prediction carries its explanation."""
        payload: dict[str, Any] = {"records": [dict(r) for r in records]}
        if explain:  # only then: the service answers without computing any
            payload["explain"] = True
        body = self._request("POST", "/predict", payload)
        try:
            predictions = [parse_prediction(p) for p in body["predictions"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unexpected("/predict", exc) from None
        if explain and any(p.explanation is None for p in predictions):
            raise self._unexpected("/predict", "no explanation came back")
        if len(predictions) != len(records):
            raise ApiError(
                f"The API at {self.base_url} answered {len(predictions)} predictions "
                f"for {len(records)} records."
            )
        return predictions

    def feedback(self, prediction_id: str, label: str) -> FeedbackResult:
        """Tell the service the true label of an earlier prediction."""
        body = self._request("POST", "/feedback", {"prediction_id": prediction_id, "label": label})
        try:
            return FeedbackResult(
                prediction_id=str(body["prediction_id"]),
                label=str(body["label"]),
                predicted=str(body["predicted"]),
                correct=bool(body["correct"]),
                model_version=str(body["model_version"]),
            )
        except (KeyError, TypeError) as exc:
            raise self._unexpected("/feedback", exc) from None

    def model_card(self) -> str:
        """``GET /model-card``: the served version's model card, as Markdown."""
        response = self._response("GET", "/model-card?format=markdown")
        if not response.headers.get("content-type", "").startswith("text/markdown"):
            raise self._unexpected("/model-card", "the body is not Markdown")
        return response.text

    def production(self) -> list[VersionCounts]:
        """``GET /metrics``: what the service answered and was told, per model version."""
        response = self._response("GET", "/metrics")
        return parse_counts(response.text)

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        response = self._response(method, path, payload)
        try:
            return response.json()
        except ValueError:
            raise self._unexpected(path, "the body is not JSON") from None

    def _response(self, method: str, path: str, payload: Any = None) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._session.request(
                method, url, json=payload, timeout=self.timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise ApiError(
                f"The API at {self.base_url} is not reachable: no answer within {self.timeout:g} s."
            ) from None
        except requests.RequestException as exc:
            raise ApiError(
                f"The API at {self.base_url} is not reachable: {_network_reason(exc)}."
            ) from None
        if response.status_code >= 400:
            raise _http_error(self.base_url, path, response)
        if response.status_code >= 300:
            raise ApiError(
                f"The API at {self.base_url} answered {path} with a redirect "
                f"(HTTP {_status_text(response.status_code)}), which the UI does not follow: "
                "CEPAGE_API_URL should be the model service's own address.",
                status=response.status_code,
            )
        return response

    def _unexpected(self, path: str, problem: object) -> ApiError:
        return ApiError(
            f"The API at {self.base_url} gave an unexpected answer to {path} "
            f"({_problem(problem)}); is this the cepage model service, and the same version "
            "as this UI?"
        )


def _problem(problem: object) -> str:
    """What was wrong with an answer, in our words only (never a value from the answer)."""
    if isinstance(problem, str):
        return problem
    if isinstance(problem, KeyError) and problem.args and isinstance(problem.args[0], str):
        return f"no {problem.args[0]!r} field"  # the names this client looks up, not the body's
    if isinstance(problem, TypeError):
        return "a field has the wrong type"
    return "a field has the wrong value"


def _network_reason(exc: requests.RequestException) -> str:
    """A short reason for a failed connection, e.g. "connection refused"."""
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema)):
        return "the URL is not valid"
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip().lower()
    for known in ("Connection refused", "Connection reset", "Remote end closed connection"):
        if known.lower() in text.lower():
            return known.lower()
    return f"{type(exc).__name__} ({text[:200]})"


def _http_error(base_url: str, path: str, response: requests.Response) -> ApiError:
    status = response.status_code
    body = _json_or_none(response)
    error = _service_error(body)
    if status == 503 and error:  # the service's own refusal when busy (it logs nothing)
        return ApiError(
            f"The API at {base_url} is busy and refused {path} for now (HTTP 503: {error}). "
            "Try again in a moment.",
            status=status,
        )
    if status >= 500:
        said = f": {error}" if error else ""
        return ApiError(
            f"The API at {base_url} failed on {path} (HTTP {status}{said}). "
            "This is a problem of the service, not of your input: its log has the details.",
            status=status,
        )
    if status == 401:
        return ApiError(
            f"The API at {base_url} refused {path} (HTTP 401): it needs an API key. Set "
            "CEPAGE_API_KEY (or CEPAGE_API_KEY_FILE) for the UI to the service's key.",
            status=status,
        )
    if error is None:  # not the service's error shape: its body is not ours to show
        return ApiError(
            f"The API at {base_url} refused {path} (HTTP {_status_text(status)}) with an "
            f"answer that is not the cepage service's: is {base_url} the model API's URL?",
            status=status,
        )
    fields, lines = _describe_details(body.get("detail"))
    message = f"The API refused the request to {path} (HTTP {status}): {error}"
    if fields:
        message += f" — fields: {', '.join(fields)}"
    if lines:
        message += ".\n" + "\n".join(f"- {line}" for line in lines)
    return ApiError(message, status=status, fields=fields)


def _service_error(body: object) -> str | None:
    """The message of the cepage service's error shape (``{"error": "...", ...}``), else None."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str) and error:
            return error
    return None


def _status_text(status: int) -> str:
    """``404 Not Found``: the phrase from the standard's table, not from the answer."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _describe_details(details: object) -> tuple[list[str], list[str]]:
    """Field names (unique, in order) and one line per problem from pydantic-style ``detail``."""
    if not isinstance(details, list):
        return [], []
    fields: list[str] = []
    lines: list[str] = []
    for item in details:
        if not isinstance(item, dict):
            continue
        loc = list(item.get("loc", []))
        names = [part for part in loc if isinstance(part, str)]
        rows = [part for part in loc if isinstance(part, int)]
        if len(names) > 1 and names[0] == "records":
            names = names[1:]
        field = names[-1] if names else "request"
        if field not in fields:
            fields.append(field)
        where = f"{field} (record {rows[0] + 1})" if rows else field
        lines.append(f"{where}: {item.get('msg', 'invalid')}")
    if len(lines) > MAX_DETAILS_SHOWN:
        hidden = len(lines) - MAX_DETAILS_SHOWN
        lines = [*lines[:MAX_DETAILS_SHOWN], f"... and {hidden} more"]
    return fields, lines


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
