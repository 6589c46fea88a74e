"""The promotion gate and the registry aliases.

``champion`` is what the service serves, ``previous`` the rollback target, ``challenger`` the
last candidate the gate rejected. A rejected model never touches ``champion``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from train.evaluate import evaluate
from train.settings import Settings
from train.tracking import StoreError, connect
from train.training import HOLDOUT_ARTIFACT

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and the figures it was based on."""

    promote: bool
    reason: str
    candidate_f1: float
    champion_f1: float | None


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


def get_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind ``name@alias``, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def latest_version(client: MlflowClient, name: str) -> ModelVersion:
    """The newest registered version of ``name``."""
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise StoreError(f"Registered model '{name}' has no version yet: run `cepage train` first.")
    return max(versions, key=lambda v: int(v.version))


def load_holdout(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """The held-out rows logged by a training run."""
    import mlflow

    text = mlflow.artifacts.load_text(f"runs:/{run_id}/{HOLDOUT_ARTIFACT}")
    return pd.read_csv(io.StringIO(text))


def score(model_uri: str, holdout: pd.DataFrame, target: str) -> float | None:
    """Macro-F1 of a registered model on ``holdout``; None if it cannot read these features."""
    import mlflow

    model: Any = mlflow.sklearn.load_model(model_uri)
    expected = list(getattr(model, "feature_names_in_", []))
    if not set(expected) <= set(holdout.columns):
        return None
    features = holdout[expected].astype("float64")
    return evaluate(model, features, holdout[target].astype(str))["f1_macro"]


def promote(
    settings: Settings,
    *,
    version: str | None = None,
    tolerance: float | None = None,
    floor: float | None = None,
) -> tuple[str, GateDecision]:
    """Run the gate for ``version`` (default: the newest) and move the aliases accordingly.

    Returns the candidate's version and the decision.
    """
    client = connect(settings, create=False)
    name = settings.model_name
    tolerance = settings.gate_tolerance if tolerance is None else tolerance
    floor = settings.gate_floor if floor is None else floor
    candidate = _get_version(client, name, version) if version else latest_version(client, name)
    champion = get_alias(client, name, CHAMPION)
    cand_version = str(candidate.version)

    run_id = str(candidate.run_id)
    run = client.get_run(run_id)
    target = _target_of(run.data.tags, candidate)
    holdout = load_holdout(client, run_id)
    candidate_f1 = score(f"models:/{name}/{cand_version}", holdout, target)
    if candidate_f1 is None:
        raise StoreError(f"Version {cand_version} cannot score its own held-out data.")

    if champion is not None and str(champion.version) == cand_version:
        decision = GateDecision(True, "already the champion", candidate_f1, candidate_f1)
        return cand_version, decision

    champion_f1 = None
    if champion is not None:
        champion_f1 = score(f"models:/{name}/{champion.version}", holdout, target)
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
            client.set_registered_model_alias(name, CHALLENGER, cand_version)
            return cand_version, decision

    decision = decide(candidate_f1, champion_f1, tolerance=tolerance, floor=floor)
    _record(client, name, cand_version, decision)
    if decision.promote:
        set_champion(client, name, cand_version, champion)
    else:
        client.set_registered_model_alias(name, CHALLENGER, cand_version)
    return cand_version, decision


def force_promote(settings: Settings, version: str) -> None:
    """Make ``version`` the champion without the gate (an operator's explicit choice)."""
    client = connect(settings, create=False)
    name = settings.model_name
    _get_version(client, name, version)
    set_champion(client, name, version, get_alias(client, name, CHAMPION))


def set_champion(client: MlflowClient, name: str, version: str, old: ModelVersion | None) -> None:
    """``version`` becomes champion; the old champion becomes ``previous``."""
    if old is not None and str(old.version) != str(version):
        client.set_registered_model_alias(name, PREVIOUS, old.version)
    client.set_registered_model_alias(name, CHAMPION, version)
    challenger = get_alias(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == str(version):
        client.delete_registered_model_alias(name, CHALLENGER)


def _record(client: MlflowClient, name: str, version: str, decision: GateDecision) -> None:
    client.set_model_version_tag(name, version, "gate.decision", str(decision.promote).lower())
    client.set_model_version_tag(name, version, "gate.reason", decision.reason)
    client.set_model_version_tag(name, version, "gate.candidate_f1", f"{decision.candidate_f1:.6f}")
    if decision.champion_f1 is not None:
        client.set_model_version_tag(
            name, version, "gate.champion_f1", f"{decision.champion_f1:.6f}"
        )


def _get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise StoreError(f"Model '{name}' has no version {version}.") from exc


def _target_of(tags: dict[str, str], candidate: ModelVersion) -> str:
    target = tags.get("cepage.target")
    if not target:
        raise StoreError(
            f"Version {candidate.version} was not logged by `cepage train` (no cepage.target tag)."
        )
    return target
