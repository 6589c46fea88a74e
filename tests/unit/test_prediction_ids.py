"""Signed prediction ids: issued ids verify, anything else is refused."""

from __future__ import annotations

import pytest

from bento.prediction_ids import InvalidPredictionIdError, PredictionIds


def test_issued_id_verifies_with_its_content() -> None:
    ids = PredictionIds(b"k", max_age_seconds=60)
    token = ids.issue("7", "Grignolino", now=1000)
    issued = ids.verify(token, now=1030)
    assert (issued.model_version, issued.label, issued.issued_at) == ("7", "Grignolino", 1000)


def test_ids_are_unique() -> None:
    ids = PredictionIds(b"k", max_age_seconds=60)
    assert len({ids.issue("1", "a") for _ in range(100)}) == 100


@pytest.mark.parametrize(
    "token", ["", "nope", "p1.abc", "p2.abc.def", "p1.!!!.sig", "p1.abc.def.ghi"]
)
def test_malformed_ids_are_refused(token: str) -> None:
    with pytest.raises(InvalidPredictionIdError):
        PredictionIds(b"k", 60).verify(token)


def test_tampered_or_foreign_ids_are_refused() -> None:
    ids = PredictionIds(b"k", max_age_seconds=60)
    token = ids.issue("1", "Nebbiolo")
    prefix, body, sig = token.split(".")
    forged = PredictionIds(b"other", 60).issue("1", "Nebbiolo")
    with pytest.raises(InvalidPredictionIdError, match="not issued"):
        ids.verify(forged)
    with pytest.raises(InvalidPredictionIdError):
        ids.verify(f"{prefix}.{body[:-2]}xx.{sig}")


def test_expired_ids_are_refused() -> None:
    ids = PredictionIds(b"k", max_age_seconds=60)
    token = ids.issue("1", "a", now=1000)
    with pytest.raises(InvalidPredictionIdError, match="expired"):
        ids.verify(token, now=1061)
