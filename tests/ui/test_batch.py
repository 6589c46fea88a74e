"""Batch scoring (ui.batch) against the real service."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import requests

from tests.ui.schemas import AUTOPAY, CALLS, CHARGES, PAPERLESS, PLAN, REGION
from train.data import load_wine_frame
from ui.batch import (
    ID_COLUMN,
    LABEL_COLUMN,
    OUT_OF_RANGE_COLUMN,
    PROBABILITY_PREFIX,
    BatchError,
    check_values,
    read_csv,
    score_frame,
    template_csv,
    to_csv,
)
from ui.client import ApiClient
from ui.form import default_value, training_range
from ui.responses import Metadata, Prediction, Record

pytestmark = pytest.mark.ui


class Recording:
    """The real client, recording the size of each request it sends."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.sizes: list[int] = []

    def predict(self, records: list[Record]) -> list[Prediction]:
        self.sizes.append(len(records))
        return self.client.predict(records)


class Offline:
    """A stand-in client with no service: records what it was sent, answers the first class."""

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.classes = classes
        self.sent: list[Record] = []

    def predict(self, records: list[Record]) -> list[Prediction]:
        self.sent.extend(records)
        first = self.classes[0]
        return [
            Prediction(f"id-{len(self.sent)}-{i}", first, {first: 1.0}, ())
            for i in range(len(records))
        ]


def sample_frame(served: Metadata) -> pd.DataFrame:
    """Rows at the training minimum, median and maximum, and one beyond the first feature's max."""
    # The median of an integer feature may be a half: the typical value is a whole number.
    typical = {f.name: float(default_value(f) or 0) for f in served.schema.features}
    ranges = {f.name: training_range(f) for f in served.schema.features}
    rows = [
        {name: low for name, (low, _, _) in ranges.items()},
        typical,
        {name: high for name, (_, high, _) in ranges.items()},
        dict(typical),
    ]
    low, high, _ = ranges[served.schema.names[0]]
    rows[3][served.schema.names[0]] = high + (high - low)
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
        [{f.name: default_value(f) for f in served.schema.features}] * (2 * limit + 1),
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
    assert f"{first!r} (rows 3): 'twelve' is not a number" in message  # the header is row 1
    assert f"{last!r} (rows 4): empty, but the model needs a value" in message
    assert recording.sizes == []


def test_a_csv_round_trip(client: ApiClient, served: Metadata) -> None:
    frame = sample_frame(served)
    parsed = read_csv(to_csv(frame))
    assert all(isinstance(v, str) for v in parsed.to_numpy().ravel()), "cells are read as text"
    pd.testing.assert_frame_equal(parsed.astype("float64"), frame)
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


MIXED_CSV = (
    f'"{CHARGES}",{CALLS},{PAPERLESS},{AUTOPAY},{PLAN},{REGION}\n'
    "72.5,3,yes,no,basic,north\n"
    ",0,,true,premium,\n"  # blanks in the three columns that may be empty
    "  10 ,9,N,1,gold,south\n"  # padding, a short no, a category never seen in training
    "150,2.0,False,FALSE,legacy,NA\n"  # a whole 2.0; NA is a blank, as in training (pandas)
    "11,2.5,y,0,basic,west\n"  # a fraction in an integer column is sent as is, like the API
).encode()


def test_a_version_2_csv_becomes_typed_records(v2_metadata: Metadata) -> None:
    schema = v2_metadata.schema
    frame = read_csv(MIXED_CSV)
    records = check_values(frame, schema)
    assert records == [
        {CHARGES: 72.5, CALLS: 3, PAPERLESS: True, AUTOPAY: False, PLAN: "basic", REGION: "north"},
        {CHARGES: None, CALLS: 0, PAPERLESS: None, AUTOPAY: True, PLAN: "premium", REGION: None},
        {CHARGES: 10.0, CALLS: 9, PAPERLESS: False, AUTOPAY: True, PLAN: "gold", REGION: "south"},
        {CHARGES: 150.0, CALLS: 2, PAPERLESS: False, AUTOPAY: False, PLAN: "legacy", REGION: None},
        {CHARGES: 11.0, CALLS: 2.5, PAPERLESS: True, AUTOPAY: False, PLAN: "basic", REGION: "west"},
    ]
    assert all(type(r[CALLS]) is int for r in records[:4]), "a whole number is sent as an int"
    offline = Offline(schema.classes)
    scored = score_frame(offline, frame, schema, max_records=3)
    assert offline.sent == records
    # The scored table keeps the cells as they were written, blanks included.
    assert list(scored[CHARGES]) == ["72.5", "", "  10 ", "150", "11"]
    assert list(scored[LABEL_COLUMN]) == ["left"] * 5


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("abc,3,yes,no,basic,north", f"{CHARGES!r} (rows 3): 'abc' is not a number"),
        ("1,two,yes,no,basic,north", f"{CALLS!r} (rows 3): 'two' is not a number"),
        ("1,,yes,no,basic,north", f"{CALLS!r} (rows 3): empty, but the model needs a value"),
        ("1,2,maybe,no,basic,north", f"{PAPERLESS!r} (rows 3): 'maybe' is not a yes/no value"),
        ("1,2,yes,,basic,north", f"{AUTOPAY!r} (rows 3): empty, but the model needs a value"),
        ("1,2,yes,no,,north", f"{PLAN!r} (rows 3): empty, but the model needs a value"),
        ("inf,2,yes,no,basic,north", f"{CHARGES!r} (rows 3): 'inf' is not a finite number"),
    ],
)
def test_a_cell_that_does_not_fit_is_named_before_sending(
    v2_metadata: Metadata, row: str, problem: str
) -> None:
    good = "72.5,3,yes,no,basic,north"
    data = MIXED_CSV.splitlines()[0] + f"\n{good}\n{row}\n".encode()
    offline = Offline(v2_metadata.schema.classes)
    with pytest.raises(BatchError) as caught:
        score_frame(offline, read_csv(data), v2_metadata.schema, 10)
    assert problem in str(caught.value)
    assert str(caught.value).startswith("Some cells do not fit the model's features: ")
    assert offline.sent == []


def test_many_bad_rows_are_counted_not_listed(v2_metadata: Metadata) -> None:
    rows = "\n".join(f"x{i},1,yes,no,basic," for i in range(8))
    data = MIXED_CSV.splitlines()[0] + f"\n{rows}\n".encode()
    with pytest.raises(BatchError) as caught:
        check_values(read_csv(data), v2_metadata.schema)
    assert "(rows 2, 3, 4, 5, 6 and 3 more): 'x0' is not a number" in str(caught.value)


def test_the_template_has_a_typical_row_of_every_kind(v2_metadata: Metadata) -> None:
    schema = v2_metadata.schema
    template = read_csv(template_csv(schema))
    assert list(template.columns) == schema.names
    assert template.iloc[0].to_dict() == {
        CHARGES: "60.1",
        CALLS: "2",
        PAPERLESS: "true",
        AUTOPAY: "false",
        PLAN: "basic",
        REGION: "north",
    }
    [record] = check_values(template, schema)
    assert record[PAPERLESS] is True and record[CALLS] == 2


def test_a_version_1_template_and_csv_still_read_as_numbers(v1_metadata: Metadata) -> None:
    schema = v1_metadata.schema
    assert template_csv(schema).decode().splitlines() == ["alcohol,magnesium", "13.05,98"]
    records = check_values(read_csv(b"alcohol,magnesium\n13.2,101\n"), schema)
    assert records == [{"alcohol": 13.2, "magnesium": 101}]
    with pytest.raises(BatchError, match="'alcohol' \\(rows 2\\): empty"):
        check_values(read_csv(b"alcohol,magnesium\n,101\n"), schema)


def test_a_labelled_file_keeps_its_label_beside_the_predictions(
    client: ApiClient, served: Metadata
) -> None:
    frame = load_wine_frame().head(4)  # the features and the true cultivar
    scored = score_frame(client, frame.rename(columns={"cultivar": served.schema.target}),
                         served.schema, served.max_records)  # fmt: skip
    assert served.schema.target in scored.columns
    assert scored[served.schema.target].tolist() == frame["cultivar"].tolist()
    agree = scored["predicted_label"] == frame["cultivar"]
    assert agree.sum() >= 3  # a model with a held-out accuracy near 1


def test_read_csv_refuses_files_over_the_limits() -> None:
    data = b"a,b\n1,2\n3,4\n5,6\n"
    assert len(read_csv(data, max_bytes=len(data), max_rows=3)) == 3
    with pytest.raises(BatchError, match=r"at most 3e-06 MB can be scored here"):
        read_csv(data, max_bytes=3)
    with pytest.raises(BatchError, match="The file has 3 rows; at most 2 are scored at once"):
        read_csv(data, max_rows=2)
