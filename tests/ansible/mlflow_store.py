"""An MLflow store for the backup/restore drill: fill it, and describe what it holds.

Run in a subprocess (MLflow keeps engines per URI in the process, and the drill drops the
database under it)::

    python -m tests.ansible.mlflow_store seed URI ARTIFACT_DIR
    python -m tests.ansible.mlflow_store snapshot URI      # JSON on stdout
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

MODEL = "cepage-classifier"


def seed(uri: str, artifacts: Path) -> None:
    """One run with params, metrics and an artifact; three versions of the model with aliases."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("cepage", artifact_location=artifacts.as_uri())
    run = client.create_run(experiment)
    run_id = run.info.run_id
    client.log_param(run_id, "model", "logreg")
    client.log_metric(run_id, "f1_macro", 0.97)
    with tempfile.TemporaryDirectory() as tmp:
        schema = Path(tmp) / "feature_schema.json"
        schema.write_text(json.dumps({"features": ["alcohol", "malic_acid"]}))
        client.log_artifact(run_id, str(schema), "model")
    client.set_terminated(run_id)
    client.create_registered_model(MODEL, description="the demo classifier")
    for _ in range(3):
        client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run_id)
    client.set_model_version_tag(MODEL, "2", "gate", "passed")
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "previous", "1")
    client.set_registered_model_alias(MODEL, "challenger", "3")


def snapshot(uri: str) -> dict[str, Any]:
    """Registered models with their versions (source, run, tags) and aliases; runs' data."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    models: dict[str, Any] = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name='{model.name}'")
        models[model.name] = {
            "description": model.description,
            "aliases": dict(sorted(model.aliases.items())),
            "versions": sorted(
                (
                    {
                        "version": v.version,
                        "source": v.source,
                        "run_id": v.run_id,
                        "tags": dict(sorted(v.tags.items())),
                    }
                    for v in versions
                ),
                key=lambda v: int(v["version"]),
            ),
        }
    runs = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            runs[run.info.run_id] = {
                "params": run.data.params,
                "metrics": run.data.metrics,
                "artifact_uri": run.info.artifact_uri,
            }
    return {"models": models, "runs": runs}


def main(argv: list[str]) -> int:
    if argv[:1] == ["seed"] and len(argv) == 3:
        seed(argv[1], Path(argv[2]))
        return 0
    if argv[:1] == ["snapshot"] and len(argv) == 2:
        print(json.dumps(snapshot(argv[1]), sort_keys=True))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
