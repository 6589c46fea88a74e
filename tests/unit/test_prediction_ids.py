"""Signed prediction ids: issued ids verify, anything else is refused."""

from __future__ import annotations

import pytest

from bento.prediction_ids import (
    AlreadyUsedError,
    InvalidPredictionIdError,
    PredictionIds,
    UsedIds,
)


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


def test_an_id_is_good_for_one_feedback() -> None:
    ids = PredictionIds(b"k", max_age_seconds=60)
    used = UsedIds(max_age_seconds=60)
    first, second = ids.issue("1", "a", now=1000), ids.issue("1", "a", now=1000)
    used.claim(first, ids.verify(first, now=1010), now=1010)
    with pytest.raises(AlreadyUsedError, match="already been given feedback"):
        used.claim(first, ids.verify(first, now=1020), now=1020)
    used.claim(second, ids.verify(second, now=1020), now=1020)  # another id of the same content
    assert len(used) == 2


def test_used_ids_are_forgotten_once_expired() -> None:
    """Memory holds only ids that could still be replayed; an expired one is refused anyway."""
    ids = PredictionIds(b"k", max_age_seconds=60)
    used = UsedIds(max_age_seconds=60)
    old, new = ids.issue("1", "a", now=1000), ids.issue("1", "a", now=1050)
    used.claim(old, ids.verify(old, now=1055), now=1055)
    used.claim(new, ids.verify(new, now=1058), now=1058)
    with pytest.raises(AlreadyUsedError):  # still within its lifetime: remembered
        used.claim(old, ids.verify(old, now=1060), now=1060)
    later = ids.issue("1", "a", now=1061)
    used.claim(later, ids.verify(later, now=1061), now=1061)
    assert len(used) == 2  # `old` expired at 1060 and was dropped
    with pytest.raises(InvalidPredictionIdError, match="expired"):
        ids.verify(old, now=1061)


def test_used_ids_stay_bounded() -> None:
    ids = PredictionIds(b"k", max_age_seconds=3600)
    used = UsedIds(max_age_seconds=3600, capacity=3)
    tokens = [ids.issue("1", "a", now=1000) for _ in range(5)]
    for token in tokens:
        used.claim(token, ids.verify(token, now=1001), now=1001)
    assert len(used) == 3
    for token in tokens[2:]:  # the three most recently used are remembered
        with pytest.raises(AlreadyUsedError):
            used.claim(token, ids.verify(token, now=1002), now=1002)
    # The oldest was pushed out: the documented residual risk of a full memory.
    used.claim(tokens[0], ids.verify(tokens[0], now=1002), now=1002)
