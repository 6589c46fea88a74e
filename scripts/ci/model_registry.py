"""What the release and retrain workflows need to know from the MLflow model registry.

    python scripts/ci/model_registry.py champion        the @champion's version number
    python scripts/ci/model_registry.py gate-summary    Markdown: the newest version's gate decision
                                                        (candidate vs champion macro-F1), for
                                                        $GITHUB_STEP_SUMMARY

Reads MLFLOW_TRACKING_URI (and MLflow's own MLFLOW_TRACKING_USERNAME/PASSWORD) and
CEPAGE_MODEL_NAME like the `cepage` CLI (train/settings.py). Run it with the project's .venv.
Exit 1 with a one-line message when the registry has no such model or alias.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from train.settings import export_tool_env, load_settings


def _client() -> tuple[Any, str]:
    from mlflow import MlflowClient

    settings = load_settings()
    export_tool_env(settings)
    return MlflowClient(), settings.model_name


def champion_version() -> str:
    from mlflow.exceptions import MlflowException

    client, name = _client()
    try:
        return str(client.get_model_version_by_alias(name, "champion").version)
    except MlflowException as exc:
        raise LookupError(f"no {name}@champion in the registry: {exc.message}") from None


def _f1(tags: dict[str, str], key: str) -> str:
    value = tags.get(key)
    return f"{float(value):.4f}" if value else "—"


def gate_summary() -> str:
    """A Markdown table of the newest registered version's gate decision."""
    client, name = _client()
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise LookupError(f"no registered model {name!r} in the registry")
    newest = max(versions, key=lambda v: int(v.version))
    tags: dict[str, str] = dict(newest.tags or {})
    try:
        serving = str(champion_version())
    except LookupError:
        serving = "—"
    decision = tags.get("gate.decision")
    verdict = {"true": "promoted", "false": "rejected"}.get(decision or "", "not gated")
    lines = [
        f"### Retrain: version {newest.version} of `{name}` {verdict}",
        "",
        "| | macro-F1 (holdout) |",
        "|---|---|",
        f"| candidate (version {newest.version}) | {_f1(tags, 'gate.candidate_f1')} |",
        f"| champion before the gate | {_f1(tags, 'gate.champion_f1')} |",
        "",
        f"Gate: {tags.get('gate.reason', 'no decision recorded')}.",
        "",
        f"Serving now: `{name}@champion` = version {serving}.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["champion", "gate-summary"])
    args = parser.parse_args(argv)
    try:
        print(champion_version() if args.what == "champion" else gate_summary())
    except LookupError as exc:
        print(f"model_registry: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
