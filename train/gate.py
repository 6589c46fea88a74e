"""The promotion gate: a candidate becomes ``@champion`` only if it is measured good enough.

The candidate and the champion are scored on the same held-out rows (the candidate's); a
rejected model becomes ``@challenger`` and never touches ``@champion``. The decision and both
scores are recorded as tags on the candidate's version.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from contracts.features import canonical_category
from contracts.names import (
    CHAMPION,
    GATE_CANDIDATE_F1_TAG,
    GATE_CHAMPION_F1_TAG,
    GATE_DECISION_TAG,
    GATE_PRODUCTION_CANDIDATE_F1_TAG,
    GATE_PRODUCTION_CHAMPION_F1_TAG,
    GATE_PRODUCTION_ROWS_TAG,
    GATE_REASON_TAG,
    TARGET_TAG,
)
from train.artifacts import digest, download, feature_list, load_estimator, model_file
from train.evaluate import evaluate
from train.registry import get_alias, get_version, latest_version, set_challenger, set_champion
from train.schema import model_frame
from train.settings import Settings
from train.tracking import StoreError, connect
from train.training import HOLDOUT_ARTIFACT, PRODUCTION_HOLDOUT_ARTIFACT

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and the figures it was based on."""

    promote: bool
    reason: str
    candidate_f1: float
    champion_f1: float | None
    # The production check (recent labelled production rows), when it ran.
    production_rows: int | None = None
    candidate_production_f1: float | None = None
    champion_production_f1: float | None = None


def decide(
    candidate_f1: float, champion_f1: float | None, *, tolerance: float, floor: float
) -> GateDecision:
    """Promote iff macro-F1 >= floor and (no champion or >= champion - tolerance)."""
    if candidate_f1 < floor:
        return GateDecision(
            False,
            f"macro-F1 {candidate_f1:.4f} is below the floor {floor:.4f}",
            candidate_f1,
            champion_f1,
        )
    if champion_f1 is None:
        return GateDecision(
            True,
            f"first model: macro-F1 {candidate_f1:.4f} >= floor {floor:.4f}",
            candidate_f1,
            None,
        )
    if candidate_f1 < champion_f1 - tolerance:
        return GateDecision(
            False,
            f"macro-F1 {candidate_f1:.4f} < champion's {champion_f1:.4f} - tolerance {tolerance}",
            candidate_f1,
            champion_f1,
        )
    return GateDecision(
        True,
        f"macro-F1 {candidate_f1:.4f} >= champion's {champion_f1:.4f} - tolerance {tolerance}",
        candidate_f1,
        champion_f1,
    )


def decide_on_production(
    decision: GateDecision,
    candidate_f1: float | None,
    champion_f1: float | None,
    rows: int,
    *,
    tolerance: float,
) -> GateDecision:
    """The production check on top of ``decision``: a candidate promoted on the usual held-out
    rows is still rejected when it does worse than the champion (minus ``tolerance``) on the
    recent labelled production rows. Both scores are kept either way."""
    scored = replace(
        decision,
        production_rows=rows,
        candidate_production_f1=candidate_f1,
        champion_production_f1=champion_f1,
    )
    if not decision.promote or candidate_f1 is None or champion_f1 is None:
        return scored
    if candidate_f1 < champion_f1 - tolerance:
        return replace(
            scored,
            promote=False,
            reason=(
                f"on {rows} recent labelled production rows, macro-F1 {candidate_f1:.4f} < "
                f"champion's {champion_f1:.4f} - tolerance {tolerance} (held-out rows: "
                f"{decision.reason})"
            ),
        )
    return replace(
        scored,
        reason=(
            f"{decision.reason}; on {rows} recent labelled production rows "
            f"{candidate_f1:.4f} vs the champion's {champion_f1:.4f}"
        ),
    )


def load_holdout(
    client: MlflowClient, run_id: str, artifact: str = HOLDOUT_ARTIFACT
) -> pd.DataFrame | None:
    """The held-out rows logged by a training run (None: the run has no such artifact)."""
    import mlflow

    if artifact != HOLDOUT_ARTIFACT:
        folder, _, name = artifact.rpartition("/")
        if name not in {f.path.rsplit("/", 1)[-1] for f in client.list_artifacts(run_id, folder)}:
            return None
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/{artifact}")
    # As text: each version's schema says what a column is (score), and a category such as
    # "007" must not come back as the number 7.
    return pd.read_csv(io.StringIO(text), dtype=str)


@dataclass(frozen=True)
class Judged:
    """A version's model as the gate read it: the estimator, the digest of its file and its
    feature schema's features (None for a model logged without one)."""

    estimator: Any
    digest: str
    features: list[dict[str, Any]] | None = None


def read_version(name: str, version: str) -> Judged:
    """Download a version's model and load it safely (allow-listed types, never a pickle)."""
    model_dir = download(f"models:/{name}/{version}")
    path = model_file(model_dir)
    return Judged(load_estimator(path), digest(path), feature_list(model_dir))


def score(judged: Judged, holdout: pd.DataFrame, target: str) -> float | None:
    """Macro-F1 of a version on ``holdout``; None if it cannot read these features.

    The rows are read back from CSV, so each column is first put in the form the version was
    fitted on, by that version's own schema (a category ``1`` stays the text ``"1"``).
    """
    model = judged.estimator
    expected = list(getattr(model, "feature_names_in_", []))
    if not set(expected) <= set(holdout.columns):
        return None
    if judged.features is not None:
        features = model_frame(holdout, judged.features)[expected]
    else:
        features = holdout[expected].astype("float64")
    return evaluate(model, features, holdout[target].map(canonical_category))["f1_macro"]


def promote(
    settings: Settings,
    *,
    version: str | None = None,
    tolerance: float | None = None,
    floor: float | None = None,
    production_tolerance: float | None = None,
) -> tuple[str, GateDecision]:
    """Run the gate for ``version`` (default: the newest) and move the aliases accordingly.

    When the candidate was trained on a set built from production (``cepage dataset``) with
    enough recent labelled rows held out, it must also do no worse than the champion on those.

    Returns the candidate's version and the decision.
    """
    client = connect(settings, create=False)
    name = settings.model_name
    tolerance = settings.gate_tolerance if tolerance is None else tolerance
    floor = settings.gate_floor if floor is None else floor
    candidate = get_version(client, name, version) if version else latest_version(client, name)
    champion = get_alias(client, name, CHAMPION)
    cand_version = str(candidate.version)

    run_id = str(candidate.run_id)
    run = client.get_run(run_id)
    target = _target_of(run.data.tags, candidate)
    holdout = load_holdout(client, run_id)
    if holdout is None:
        raise StoreError(f"Version {cand_version}'s run has no held-out rows ({HOLDOUT_ARTIFACT}).")
    judged = read_version(name, cand_version)
    candidate_f1 = score(judged, holdout, target)
    if candidate_f1 is None:
        raise StoreError(f"Version {cand_version} cannot score its own held-out data.")

    if champion is not None and str(champion.version) == cand_version:
        decision = GateDecision(True, "already the champion", candidate_f1, candidate_f1)
        set_champion(client, name, cand_version, champion, judged.digest)  # records the digest
        return cand_version, decision

    champion_f1 = None
    champion_judged = None
    if champion is not None:
        champion_judged = read_version(name, str(champion.version))
        champion_f1 = score(champion_judged, holdout, target)
        if champion_f1 is None:
            decision = GateDecision(
                False,
                f"the champion (version {champion.version}) uses other features, so the two "
                "cannot be compared on the same rows; promote by hand with "
                f"`cepage promote --version {cand_version} --force` if this is intended",
                candidate_f1,
                None,
            )
            _record(client, name, cand_version, decision)
            set_challenger(client, name, cand_version, judged.digest)
            return cand_version, decision

    decision = decide(candidate_f1, champion_f1, tolerance=tolerance, floor=floor)
    production = load_holdout(client, run_id, PRODUCTION_HOLDOUT_ARTIFACT)
    if (
        champion_judged is not None
        and production is not None
        and len(production) >= settings.gate_min_production_rows
    ):
        if production_tolerance is None:
            production_tolerance = settings.gate_production_tolerance
        decision = decide_on_production(
            decision,
            score(judged, production, target),
            score(champion_judged, production, target),
            len(production),
            tolerance=tolerance if production_tolerance is None else production_tolerance,
        )
    _record(client, name, cand_version, decision)
    if decision.promote:
        set_champion(client, name, cand_version, champion, judged.digest)
    else:
        set_challenger(client, name, cand_version, judged.digest)
    return cand_version, decision


def _record(client: MlflowClient, name: str, version: str, decision: GateDecision) -> None:
    tags = {
        GATE_DECISION_TAG: str(decision.promote).lower(),
        GATE_REASON_TAG: decision.reason,
        GATE_CANDIDATE_F1_TAG: f"{decision.candidate_f1:.6f}",
    }
    if decision.champion_f1 is not None:
        tags[GATE_CHAMPION_F1_TAG] = f"{decision.champion_f1:.6f}"
    if decision.production_rows is not None:
        tags[GATE_PRODUCTION_ROWS_TAG] = str(decision.production_rows)
        for key, score_ in (
            (GATE_PRODUCTION_CANDIDATE_F1_TAG, decision.candidate_production_f1),
            (GATE_PRODUCTION_CHAMPION_F1_TAG, decision.champion_production_f1),
        ):
            if score_ is not None:
                tags[key] = f"{score_:.6f}"
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def _target_of(tags: dict[str, str], candidate: ModelVersion) -> str:
    target = tags.get(TARGET_TAG)
    if not target:
        raise StoreError(
            f"Version {candidate.version} was not logged by `cepage train` (no {TARGET_TAG} tag)."
        )
    return target


@dataclass(frozen=True)
class GateRecord:
    """The gate's decision as recorded on the newest version, and what is served now."""

    model_name: str
    version: str
    decision: bool | None
    """True promoted, False rejected, None never gated."""
    reason: str | None
    candidate_f1: float | None
    champion_f1: float | None
    champion: str | None
    """The version behind @champion now (None: no champion)."""
    production_rows: int | None = None
    candidate_production_f1: float | None = None
    champion_production_f1: float | None = None


def last_gate(settings: Settings) -> GateRecord:
    """What the gate decided about the newest registered version (for a retrain's summary)."""
    client = connect(settings, create=False)
    name = settings.model_name
    newest = latest_version(client, name)
    tags: dict[str, str] = dict(newest.tags or {})
    champion = get_alias(client, name, CHAMPION)
    decision = tags.get(GATE_DECISION_TAG)
    return GateRecord(
        model_name=name,
        version=str(newest.version),
        decision=None if decision is None else decision == "true",
        reason=tags.get(GATE_REASON_TAG),
        candidate_f1=_float_tag(tags, GATE_CANDIDATE_F1_TAG),
        champion_f1=_float_tag(tags, GATE_CHAMPION_F1_TAG),
        champion=None if champion is None else str(champion.version),
        production_rows=int(tags[GATE_PRODUCTION_ROWS_TAG])
        if tags.get(GATE_PRODUCTION_ROWS_TAG)
        else None,
        candidate_production_f1=_float_tag(tags, GATE_PRODUCTION_CANDIDATE_F1_TAG),
        champion_production_f1=_float_tag(tags, GATE_PRODUCTION_CHAMPION_F1_TAG),
    )


def _float_tag(tags: dict[str, str], key: str) -> float | None:
    value = tags.get(key)
    return float(value) if value else None
