"""Batch scoring (ui.batch) against the real service."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import requests

from ui.batch import (
    ID_COLUMN,
    LABEL_COLUMN,
    OUT_OF_RANGE_COLUMN,
    PROBABILITY_PREFIX,
    BatchError,
    read_csv,
    score_frame,
    template_csv,
    to_csv,
)
from ui.client import ApiClient
from ui.responses import Metadata, Prediction

pytestmark = pytest.mark.ui


class Recording:
    """The real client, recording the size of each request it sends."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.sizes: list[int] = []

    def predict(self, records: list[dict[str, float]]) -> list[Prediction]:
        self.sizes.append(len(records))
        return self.client.predict(records)


def sample_frame(served: Metadata) -> pd.DataFrame:
    """Rows at the training minimum, median and maximum, and one beyond the first feature's max."""
    features = served.schema.features
    rows = [
        {f.name: f.min for f in features},
        {f.name: f.median for f in features},
        {f.name: f.max for f in features},
        {f.name: f.median for f in features},
    ]
    first = features[0]
    rows[3][first.name] = first.max + (first.max - first.min)
    return pd.DataFrame(rows, columns=served.schema.names)


def service_answers(api_url: str, frame: pd.DataFrame) -> list[dict[str, object]]:
    """What the service says about the rows, asked directly over HTTP."""
    records = [{k: float(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    response = requests.post(f"{api_url}/predict", json={"records": records}, timeout=30)
    response.raise_for_status()
    predictions: list[dict[str, object]] = response.json()["predictions"]
    return predictions


def test_a_good_table_is_scored(client: ApiClient, served: Metadata, api_url: str) -> None:
    frame = sample_frame(served)
    scored = score_frame(client, frame, served.schema, served.max_records)

    classes = served.schema.classes
    probability_columns = [f"{PROBABILITY_PREFIX}{c}" for c in classes]
    assert list(scored.columns) == [
        *served.schema.names,
        LABEL_COLUMN,
        *probability_columns,
        OUT_OF_RANGE_COLUMN,
        ID_COLUMN,
    ]
    pd.testing.assert_frame_equal(scored[served.schema.names], frame)
    expected = service_answers(api_url, frame)
    assert list(scored[LABEL_COLUMN]) == [p["label"] for p in expected]
    for column, cls in zip(probability_columns, classes, strict=True):
        assert list(scored[column]) == pytest.approx([p["probabilities"][cls] for p in expected])  # type: ignore[index]
    assert scored[probability_columns].sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert list(scored[OUT_OF_RANGE_COLUMN]) == ["", "", "", served.schema.names[0]]
    assert scored[ID_COLUMN].str.len().min() > 0


def test_rows_go_in_chunks_of_at_most_max_records(client: ApiClient, served: Metadata) -> None:
    frame = pd.concat([sample_frame(served)] * 2, ignore_index=True).iloc[:7]
    recording = Recording(client)
    progress: list[tuple[int, int]] = []
    chunked = score_frame(
        recording, frame, served.schema, 3, on_progress=lambda d, t: progress.append((d, t))
    )
    assert recording.sizes == [3, 3, 1]
    assert progress == [(3, 7), (6, 7), (7, 7)]
    whole = score_frame(client, frame, served.schema, served.max_records)
    same = [c for c in whole.columns if c != ID_COLUMN]
    pd.testing.assert_frame_equal(chunked[same], whole[same])


def test_more_rows_than_the_service_takes_at_once(client: ApiClient, served: Metadata) -> None:
    limit = served.max_records
    frame = pd.DataFrame(
        [{f.name: f.median for f in served.schema.features}] * (2 * limit + 1),
        columns=served.schema.names,
    )
    recording = Recording(client)
    scored = score_frame(recording, frame, served.schema, limit)
    assert recording.sizes == [limit, limit, 1]
    assert len(scored) == 2 * limit + 1
    assert scored[LABEL_COLUMN].nunique() == 1


def test_wrong_columns_are_named_and_nothing_is_sent(client: ApiClient, served: Metadata) -> None:
    dropped = served.schema.names[1]
    frame = sample_frame(served).drop(columns=[dropped]).assign(unexpected_column=1.0)
    recording = Recording(client)
    with pytest.raises(BatchError) as caught:
        score_frame(recording, frame, served.schema, served.max_records)
    message = str(caught.value)
    assert f"missing columns: {dropped!r}" in message
    assert "unexpected columns: 'unexpected_column'" in message
    assert recording.sizes == []


def test_bad_cells_are_named_and_nothing_is_sent(client: ApiClient, served: Metadata) -> None:
    frame = sample_frame(served).astype(object)
    first, last = served.schema.names[0], served.schema.names[-1]
    frame.loc[1, first] = "twelve"
    frame.loc[2, last] = None
    recording = Recording(client)
    with pytest.raises(BatchError) as caught:
        score_frame(recording, frame, served.schema, served.max_records)
    message = str(caught.value)
    assert f"{first!r} (rows 3)" in message  # spreadsheet numbering: the header is row 1
    assert f"{last!r} (rows 4)" in message
    assert recording.sizes == []


def test_a_csv_round_trip(client: ApiClient, served: Metadata) -> None:
    frame = sample_frame(served)
    parsed = read_csv(to_csv(frame))
    pd.testing.assert_frame_equal(parsed, frame)
    scored = score_frame(client, parsed, served.schema, served.max_records)
    back = pd.read_csv(io.BytesIO(to_csv(scored)), keep_default_na=False)
    assert list(back.columns) == list(scored.columns)
    assert list(back[LABEL_COLUMN]) == list(scored[LABEL_COLUMN])


def test_the_template_is_a_valid_batch(client: ApiClient, served: Metadata) -> None:
    template = read_csv(template_csv(served.schema))
    assert list(template.columns) == served.schema.names
    assert len(template) == 1
    scored = score_frame(client, template, served.schema, served.max_records)
    assert scored[OUT_OF_RANGE_COLUMN].iloc[0] == ""


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "not a readable CSV"),
        (b"a,b\n", "no rows"),
        (b'a,b\n"1,2\n', "not a readable CSV"),
        (b"\xff\xfe\x00garbage\xff", "not a readable CSV"),
    ],
)
def test_unreadable_files_are_explained(data: bytes, problem: str) -> None:
    with pytest.raises(BatchError, match=problem):
        read_csv(data)
