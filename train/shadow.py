"""Promotion on the shadow's record: the @challenger against the @champion on live traffic.

The service's shadow (``bento/shadow.py``) writes what the challenger answered to each record
the champion answered (the production log's ``shadow`` dataset); the feedback dataset holds the
true labels. Joined on the prediction id, the two give each model's accuracy on the same labelled
records, which is what ``cepage promote --shadow`` decides on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from contracts import production_log as names
from contracts.names import CHALLENGER, CHAMPION, MODEL_DIGEST_TAG
from contracts.production_log import LogLocation
from train.errors import StepError
from train.production import _files, _read
from train.registry import get_alias, set_champion
from train.settings import Settings
from train.tracking import StoreError, connect

# Tags recorded on the challenger's version by a shadow decision.
SHADOW_DECISION_TAG = "shadow.promoted"
SHADOW_REASON_TAG = "shadow.reason"
SHADOW_PREDICTIONS_TAG = "shadow.predictions"
SHADOW_LABELLED_TAG = "shadow.labelled"
SHADOW_CHALLENGER_ACCURACY_TAG = "shadow.challenger_accuracy"
SHADOW_CHAMPION_ACCURACY_TAG = "shadow.champion_accuracy"


@dataclass(frozen=True)
class ShadowRecord:
    """What the shadow saw of one challenger against one champion."""

    challenger_version: str
    champion_version: str
    predictions: int  # records both answered
    agreed: int  # ... with the same class
    labelled: int  # ... that then got a label
    challenger_correct: int
    champion_correct: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.predictions if self.predictions else None

    @property
    def challenger_accuracy(self) -> float | None:
        return self.challenger_correct / self.labelled if self.labelled else None

    @property
    def champion_accuracy(self) -> float | None:
        return self.champion_correct / self.labelled if self.labelled else None


@dataclass(frozen=True)
class ShadowDecision:
    promote: bool
    reason: str
    record: ShadowRecord


def read_record(
    location: LogLocation,
    challenger_version: str,
    champion_version: str,
    *,
    since_day: str | None = None,
    trusted: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> ShadowRecord:
    """The shadow's answers of ``challenger_version`` beside ``champion_version``'s, joined with
    the latest label of each prediction (only labels from ``trusted`` callers when given)."""
    environ = os.environ if environ is None else environ
    shadow = _read(location, _files(location, names.SHADOW, since_day, environ), environ)
    empty = ShadowRecord(challenger_version, champion_version, 0, 0, 0, 0, 0)
    if shadow.empty:
        return empty
    shadow = shadow[
        (shadow[names.MODEL_VERSION].astype(str) == challenger_version)
        & (shadow[names.CHAMPION_VERSION].astype(str) == champion_version)
    ].drop_duplicates(names.PREDICTION_ID, keep="last")
    if shadow.empty:
        return empty
    agreed = int((shadow[names.LABEL] == shadow[names.CHAMPION_LABEL]).sum())
    feedback = _read(location, _files(location, names.FEEDBACK, since_day, environ), environ)
    labelled = challenger_correct = champion_correct = 0
    if not feedback.empty:
        # The latest label of each prediction, counted only if a trusted caller sent it (as
        # `cepage dataset` does: an untrusted later label is not replaced by an earlier one).
        latest = feedback.sort_values(names.TIME, kind="stable").drop_duplicates(
            names.PREDICTION_ID, keep="last"
        )
        if trusted:
            latest = latest[latest[names.WHO].isin(list(trusted))]
        joined = shadow.merge(
            latest[[names.PREDICTION_ID, names.LABEL]].rename(columns={names.LABEL: "_truth"}),
            on=names.PREDICTION_ID,
        )
        labelled = len(joined)
        challenger_correct = int((joined[names.LABEL] == joined["_truth"]).sum())
        champion_correct = int((joined[names.CHAMPION_LABEL] == joined["_truth"]).sum())
    return ShadowRecord(
        challenger_version,
        champion_version,
        len(shadow),
        agreed,
        labelled,
        challenger_correct,
        champion_correct,
    )


def decide(
    record: ShadowRecord, *, min_predictions: int, min_labelled: int, tolerance: float
) -> ShadowDecision:
    """Promote when the shadow answered enough records, enough of them got a label, and on
    those the challenger was at least as accurate as the champion (within ``tolerance``)."""
    if record.predictions < min_predictions:
        return ShadowDecision(
            False,
            f"the shadow answered {record.predictions} records beside version "
            f"{record.champion_version}, fewer than the {min_predictions} required",
            record,
        )
    if record.labelled < min_labelled:
        return ShadowDecision(
            False,
            f"{record.labelled} of the records it answered got a label, fewer than the "
            f"{min_labelled} required",
            record,
        )
    challenger, champion = record.challenger_accuracy or 0.0, record.champion_accuracy or 0.0
    scores = (
        f"accuracy {challenger:.4f} against the champion's {champion:.4f} on the same "
        f"{record.labelled} labelled records"
    )
    if challenger + tolerance >= champion:
        return ShadowDecision(True, f"shadow: {scores}", record)
    return ShadowDecision(False, f"shadow: {scores}, below the tolerance {tolerance}", record)


def promote_on_shadow(
    settings: Settings,
    location: LogLocation,
    *,
    min_predictions: int | None = None,
    min_labelled: int | None = None,
    tolerance: float | None = None,
    since_day: str | None = None,
    trusted: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ShadowDecision:
    """Judge ``@challenger`` on its shadow record against ``@champion``; promote it if it holds.

    The decision and its figures are recorded as tags on the challenger's version either way.
    """
    client = connect(settings, create=False)
    name = settings.model_name
    challenger = get_alias(client, name, CHALLENGER)
    champion = get_alias(client, name, CHAMPION)
    if challenger is None or champion is None:
        raise StoreError(
            f"Model '{name}' needs a @{CHAMPION} and a @{CHALLENGER} for a shadow decision "
            f"(the registry has {'no' if challenger is None else 'a'} challenger and "
            f"{'no' if champion is None else 'a'} champion)."
        )
    if str(challenger.version) == str(champion.version):
        raise StoreError(f"Version {challenger.version} is both @{CHAMPION} and @{CHALLENGER}.")
    digest = (challenger.tags or {}).get(MODEL_DIGEST_TAG)
    if not digest:
        raise StepError(
            f"Version {challenger.version} (@{CHALLENGER}) has no recorded model digest: the gate "
            f"records it when it judges a version; run `cepage promote --version "
            f"{challenger.version}` again first."
        )
    record = read_record(
        location,
        str(challenger.version),
        str(champion.version),
        since_day=since_day,
        trusted=settings.dataset_feedback_from if trusted is None else trusted,
        environ=environ,
    )
    decision = decide(
        record,
        min_predictions=settings.shadow_min_predictions
        if min_predictions is None
        else min_predictions,
        min_labelled=settings.shadow_min_feedback if min_labelled is None else min_labelled,
        tolerance=settings.gate_tolerance if tolerance is None else tolerance,
    )
    tags = {
        SHADOW_DECISION_TAG: str(decision.promote).lower(),
        SHADOW_REASON_TAG: decision.reason,
        SHADOW_PREDICTIONS_TAG: str(record.predictions),
        SHADOW_LABELLED_TAG: str(record.labelled),
    }
    for key, value in (
        (SHADOW_CHALLENGER_ACCURACY_TAG, record.challenger_accuracy),
        (SHADOW_CHAMPION_ACCURACY_TAG, record.champion_accuracy),
    ):
        if value is not None:
            tags[key] = f"{value:.6f}"
    for key, text in tags.items():
        client.set_model_version_tag(name, str(challenger.version), key, text)
    if decision.promote:
        set_champion(client, name, str(challenger.version), champion, digest)  # drops @challenger
    return decision
