"""iac/infra.sh, what `make infra-*` runs: its guards, and the Terraform commands it issues.

Terraform is replaced by a recorder here (a real init needs the real state bucket); the plans
themselves are tested for real in test_terraform.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.tf import DUMMY_CREDENTIALS, IAC

pytestmark = pytest.mark.infra

RECORDER = """
import json, os, sys
with open(os.environ["RECORD"], "a") as f:
    f.write(json.dumps({"args": sys.argv[1:], "cwd": os.getcwd(),
                        "data_dir": os.environ.get("TF_DATA_DIR"),
                        "aws_key": os.environ.get("AWS_ACCESS_KEY_ID"),
                        "aws_secret": os.environ.get("AWS_SECRET_ACCESS_KEY")}) + "\\n")
"""


@pytest.fixture
def iac_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "iac"
    shutil.copytree(IAC, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    return copy


def run(
    iac: Path, *args: str, credentials: bool = True
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCW_", "AWS_", "TF_"))}
    record = iac / "calls.jsonl"
    recorder = iac / "recorder.py"
    recorder.write_text(RECORDER)
    env.update(TERRAFORM=f"{sys.executable} {recorder}", RECORD=str(record))
    if credentials:
        env.update(DUMMY_CREDENTIALS)
    done = subprocess.run(
        ["bash", str(iac / "infra.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = (
        [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    )
    return done, calls


def fill_backend(iac: Path, env: str) -> None:
    backend = iac / "envs" / f"{env}.backend.hcl"
    backend.write_text(backend.read_text().replace("CHANGE-ME", "cepage-tfstate-test"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("plan", "staging"), "ENV must be dev or prod"),
        (("plan",), "ENV must be dev or prod"),
        (("plan", "dev"), 'still has bucket = "CHANGE-ME"'),
        (("bootstrap",), "usage: infra.sh bootstrap SUFFIX"),
    ],
)
def test_guards(args: tuple[str, ...], message: str, iac_copy: Path) -> None:
    done, calls = run(iac_copy, *args)
    assert done.returncode != 0
    assert message in done.stderr
    assert calls == [], "terraform must not run"


def test_credentials_come_from_scw_env(iac_copy: Path) -> None:
    fill_backend(iac_copy, "dev")
    done, calls = run(iac_copy, "plan", "dev", credentials=False)
    assert done.returncode != 0
    for name in ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID"):
        assert name in done.stderr
    assert calls == []


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_plan_then_apply(env: str, iac_copy: Path) -> None:
    fill_backend(iac_copy, env)
    (iac_copy / "envs" / f"{env}.local.tfvars").write_text('admin_cidrs = ["203.0.113.7/32"]\n')
    done, calls = run(iac_copy, "plan", env)
    assert done.returncode == 0, done.stderr
    init, plan = calls
    data_dir = str(iac_copy / ".terraform" / env)
    assert init["args"][0] == "init"
    assert f"-backend-config={iac_copy}/envs/{env}.backend.hcl" in init["args"]
    assert plan["args"][0] == "plan"
    assert f"-var-file=envs/{env}.tfvars" in plan["args"]
    assert f"-var-file=envs/{env}.local.tfvars" in plan["args"]
    assert f"-out={data_dir}/{env}.tfplan" in plan["args"]
    for call in calls:
        assert call["data_dir"] == data_dir, "each environment has its own working directory"
        assert call["cwd"] == str(iac_copy)
        # The S3 backend reads the Scaleway key pair.
        assert call["aws_key"] == DUMMY_CREDENTIALS["SCW_ACCESS_KEY"]
        assert call["aws_secret"] == DUMMY_CREDENTIALS["SCW_SECRET_KEY"]

    # With a saved plan, apply applies exactly it, without variables, and consumes it.
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    Path(data_dir, f"{env}.tfplan").write_text("saved")
    (iac_copy / "calls.jsonl").unlink()
    done, calls = run(iac_copy, "apply", env)
    assert done.returncode == 0, done.stderr
    apply = calls[-1]
    assert apply["args"] == ["apply", "-input=false", f"{data_dir}/{env}.tfplan"]
    assert not Path(data_dir, f"{env}.tfplan").exists()

    # Without one, apply plans and asks (no -auto-approve anywhere).
    (iac_copy / "calls.jsonl").unlink()
    done, calls = run(iac_copy, "apply", env)
    assert calls[-1]["args"][0] == "apply"
    assert f"-var-file=envs/{env}.tfvars" in calls[-1]["args"]
    assert not any("-auto-approve" in a for c in calls for a in c["args"])


def test_destroy_asks(iac_copy: Path) -> None:
    fill_backend(iac_copy, "dev")
    done, calls = run(iac_copy, "destroy", "dev")
    assert done.returncode == 0, done.stderr
    assert calls[-1]["args"][0] == "destroy"
    assert not any("-auto-approve" in a for c in calls for a in c["args"])
