"""The UI's API client against the real service, and its error messages."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from contracts import features
from ui.client import ApiClient, ApiError, normalize_url
from ui.form import training_range
from ui.responses import Metadata

pytestmark = pytest.mark.ui


def test_metadata_is_the_services(client: ApiClient, metadata: dict[str, Any]) -> None:
    parsed = client.metadata()
    schema = metadata["feature_schema"]
    assert parsed.name == metadata["name"]
    assert parsed.version == metadata["version"]
    assert parsed.run_id == metadata["run_id"]
    assert parsed.max_records == metadata["max_records"]
    assert parsed.metrics == metadata["metrics"]
    assert parsed.schema.target == schema["target"]
    assert list(parsed.schema.classes) == schema["classes"]
    assert parsed.schema.names == [f["name"] for f in schema["features"]]
    for feature, raw in zip(parsed.schema.features, schema["features"], strict=True):
        assert (feature.min, feature.max, feature.median) == (raw["min"], raw["max"], raw["median"])
        assert feature.kind == features.kind(raw)  # "dtype" in a version-1 schema, else "kind"


def test_predict_scores_records_in_order(
    client: ApiClient, served: Metadata, median_record: dict[str, float]
) -> None:
    first = served.schema.features[0]
    low, high, _ = training_range(first)
    beyond = {**median_record, first.name: high + (high - low)}
    predictions = client.predict([median_record, beyond])
    assert len(predictions) == 2
    for prediction in predictions:
        assert set(prediction.probabilities) == set(served.schema.classes)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)  # type: ignore[arg-type]
        assert prediction.id
    assert predictions[0].out_of_range == ()
    assert predictions[1].out_of_range == (first.name,)
    assert predictions[0].id != predictions[1].id


def test_a_refused_record_names_its_fields(
    client: ApiClient, served: Metadata, median_record: dict[str, float]
) -> None:
    missing = served.schema.names[-1]
    record = {k: v for k, v in median_record.items() if k != missing}
    record["not_a_feature"] = 1.0
    with pytest.raises(ApiError) as caught:
        client.predict([median_record, record])
    error = caught.value
    assert error.status == 400
    assert set(error.fields) == {missing, "not_a_feature"}
    assert f"{missing} (record 2)" in str(error)
    assert "not_a_feature (record 2)" in str(error)
    assert "Traceback" not in str(error)


def test_too_many_records_are_refused_with_the_reason(
    client: ApiClient, served: Metadata, median_record: dict[str, float]
) -> None:
    with pytest.raises(ApiError) as caught:
        client.predict([median_record] * (served.max_records + 1))
    assert caught.value.status == 400
    assert caught.value.fields == ("records",)
    assert str(served.max_records) in str(caught.value)


def test_a_too_large_body_gets_the_services_message(
    client: ApiClient, median_record: dict[str, float]
) -> None:
    # Far more than the body limit (MiBs): the service's guard answers 413 before validating.
    records = [median_record] * 40_000
    with pytest.raises(ApiError) as caught:
        client.predict(records)
    assert caught.value.status == 413
    assert "larger than" in str(caught.value)


def test_feedback_is_recorded_as_correct_or_incorrect(
    client: ApiClient, served: Metadata, median_record: dict[str, float]
) -> None:
    prediction, another = client.predict([median_record, median_record])
    right = client.feedback(prediction.id, prediction.label)
    assert (right.correct, right.predicted, right.label) == (
        True,
        prediction.label,
        prediction.label,
    )
    assert right.model_version == served.version
    other = next(c for c in served.schema.classes if c != another.label)
    wrong = client.feedback(another.id, other)  # one feedback per prediction id
    assert not wrong.correct
    assert (wrong.predicted, wrong.label) == (another.label, other)
    with pytest.raises(ApiError) as again:
        client.feedback(prediction.id, other)
    assert (again.value.status, again.value.fields) == (400, ("prediction_id",))
    assert "already been given feedback" in str(again.value)


def test_feedback_refusals_name_the_field(
    client: ApiClient, median_record: dict[str, float]
) -> None:
    with pytest.raises(ApiError) as forged:
        client.feedback("p1.not-issued-by-the-service", "whatever")
    assert forged.value.status == 400
    assert forged.value.fields == ("prediction_id",)
    [prediction] = client.predict([median_record])
    with pytest.raises(ApiError) as unknown:
        client.feedback(prediction.id, "no-such-class")
    assert unknown.value.fields == ("label",)
    assert "no-such-class" in str(unknown.value)


def test_nothing_listening_is_not_reachable(dead_url: str) -> None:
    with pytest.raises(ApiError) as caught:
        ApiClient(dead_url, timeout=5).metadata()
    assert caught.value.status is None
    assert str(caught.value) == f"The API at {dead_url} is not reachable: connection refused."


def test_a_silent_server_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(ApiError) as caught:
            ApiClient(url, timeout=0.5).metadata()
    assert str(caught.value) == f"The API at {url} is not reachable: no answer within 0.5 s."


@pytest.mark.parametrize("url", ["", "   ", "127.0.0.1:3000", "ftp://host/", "http://"])
def test_unusable_urls_are_refused_before_any_request(url: str) -> None:
    with pytest.raises(ApiError):
        normalize_url(url)


def test_urls_are_normalized() -> None:
    assert normalize_url(" http://127.0.0.1:1234/ ") == "http://127.0.0.1:1234"


# The real service cannot be made to fail on demand: a stand-in HTTP server gives the 5xx and
# not-a-cepage-service answers, to check what the client makes of them.


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/boom/metadata":
            self._send(500, json.dumps({"error": "model exploded"}), "application/json")
        elif self.path == "/busy/metadata":  # what a batched model's full queue answers
            self._send(503, json.dumps({"error": "The model is busy (9 rows)"}), "application/json")
        elif self.path == "/html/metadata":
            self._send(200, "<html>not json</html>", "text/html")
        else:
            self._send(404, "Not Found", "text/plain")

    def _send(self, status: int, body: str, media: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_error_is_said_to_be_the_services(stand_in: str) -> None:
    with pytest.raises(ApiError) as caught:
        ApiClient(f"{stand_in}/boom").metadata()
    assert caught.value.status == 500
    message = str(caught.value)
    assert "HTTP 500: model exploded" in message
    assert "not of your input" in message


def test_a_busy_service_asks_to_try_again_not_to_read_a_log(stand_in: str) -> None:
    with pytest.raises(ApiError) as caught:
        ApiClient(f"{stand_in}/busy").metadata()
    assert caught.value.status == 503
    message = str(caught.value)
    assert "is busy" in message and "Try again in a moment" in message
    assert "log has the details" not in message


def test_a_wrong_url_is_explained(stand_in: str) -> None:
    with pytest.raises(ApiError) as not_found:
        ApiClient(f"{stand_in}/elsewhere").metadata()
    assert not_found.value.status == 404
    assert "is " + f"{stand_in}/elsewhere" + " the model API's URL?" in str(not_found.value)
    with pytest.raises(ApiError) as not_json:
        ApiClient(f"{stand_in}/html").metadata()
    assert "unexpected answer to /metadata" in str(not_json.value)
