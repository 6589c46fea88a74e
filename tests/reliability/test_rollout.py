"""Zero-downtime rollout: `cepage retrain` promotes a new model while clients keep predicting, and
the running service switches to it (hot reload) without a single failed request."""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.reliability.conftest import bentoml_server
from tests.reliability.load import Load, wait_for
from tests.support.procs import cepage, stack_env

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(300)]

RELOAD_SECONDS = "1"
# Every worker checks the store each RELOAD_SECONDS: all answers must be from the new model
# within a few checks after `cepage retrain` has packaged it.
SWITCH_BOUND_S = 15.0


def test_retrain_rolls_out_a_new_model_with_zero_failed_requests(own_home: Path) -> None:
    with bentoml_server(own_home, workers=2, CEPAGE_MODEL_RELOAD_SECONDS=RELOAD_SECONDS) as server:
        old = server.metadata()["version"]
        # Two clients without think time: enough to catch any failed request, while leaving the
        # retrain a core on a 2-core machine.
        with Load(server.url, server.median_record(), clients=2) as load:
            wait_for(
                lambda: len(load.successes()) > 50, timeout=30, what="traffic on the old model"
            )
            began = time.monotonic()
            done = cepage("retrain", "--no-build", env=stack_env(own_home), timeout=240)
            packaged = time.monotonic()
            assert done.returncode == 0, done.stdout + done.stderr
            assert "Promoted version" in done.stdout

            def only_new_answers() -> bool:
                recent = load.successes(since=time.monotonic() - 1.0)
                return len(recent) > 10 and all(o.version != old for o in recent)

            wait_for(
                only_new_answers, timeout=SWITCH_BOUND_S, what="every answer from the new model"
            )
            time.sleep(1.0)  # traffic on the new model, feedback on ids issued by the old one
        served = server.metadata()
        outcomes = list(load.outcomes)
    new = served["version"]
    # When the new model landed in the store, on the monotonic clock of the outcomes.
    stored = datetime.fromisoformat(served["created_at"]).timestamp() - (
        time.time() - time.monotonic()
    )

    assert new != old
    failures = load.failures()
    assert failures == [], f"{len(failures)} failed requests during the rollout: {failures[:5]}"
    predictions = [o for o in outcomes if o.path == "/predict"]
    assert {o.version for o in predictions} == {old, new}
    first_new = min(o.started for o in predictions if o.version == new)
    last_old = max(o.ended for o in predictions if o.version == old)
    during = [o.elapsed for o in outcomes if began <= o.started <= last_old]
    print(
        f"\nrollout: {len(outcomes)} requests, 0 failed; `cepage retrain` took "
        f"{packaged - began:.1f} s; after the new model landed in the store, the first answer "
        f"from version {new} came {first_new - stored:.2f} s later and the last from version "
        f"{old} ended {last_old - stored:.2f} s later; slowest request during the rollout "
        f"{max(during) * 1000:.0f} ms"
    )


def package_a_corrupt_model(home: Path) -> str:
    """A newer model in the store whose file is garbage (a failed copy, a full disk)."""
    models = home / "bentoml" / "models" / "cepage-classifier"
    current = (models / "latest").read_text().strip()
    broken = "brokenmodel00001"
    shutil.copytree(models / current, models / broken)
    spec = models / broken / "model.yaml"
    spec.write_text(spec.read_text().replace(f"version: {current}", f"version: {broken}"))
    (models / broken / "mlflow_model" / "model.skops").write_bytes(b"not a model")
    (models / "latest").write_text(broken)
    return broken


def test_a_corrupt_new_model_is_refused_and_the_current_one_keeps_serving(
    own_home: Path,
) -> None:
    with bentoml_server(own_home, CEPAGE_MODEL_RELOAD_SECONDS=RELOAD_SECONDS) as server:
        served = server.metadata()["bento_model"]
        with Load(server.url, server.median_record(), clients=1) as load:
            broken = package_a_corrupt_model(own_home)
            wait_for(
                lambda: "Model reload failed" in server.log.read_text(errors="replace"),
                timeout=SWITCH_BOUND_S,
                what="the refused reload in the log",
            )
            time.sleep(3 * float(RELOAD_SECONDS))  # more checks: refused once, not retried
        assert server.metadata()["bento_model"] == served
        log = server.log.read_text(errors="replace")
    assert load.failures() == []
    assert len({o.version for o in load.outcomes}) == 1
    refused = f"Model cepage-classifier:{broken} in the BentoML store cannot be served"
    assert f"{refused}: its file is not the one promoted" in log
    assert log.count("Model reload failed") == 1
