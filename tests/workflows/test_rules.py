"""The workflows follow the project's rules (tests/workflows/checks.py), each rule is shown to catch
a deliberately broken copy, and the release -> deploy -> smoke -> rollback and retrain chains are
wired as docs/ci-cd.md says."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.procs import ROOT
from tests.workflows.checks import (
    ALL_CHECKS,
    EXPECTED,
    WORKFLOWS,
    Workflow,
    actions,
    check_ci_runs_ci_script,
    check_concurrency,
    check_make_targets,
    check_permissions,
    check_pins,
    check_repo_paths,
    check_runner_access,
    check_secrets,
    check_timeouts,
    ci_run_command,
    make_calls,
    makefile_targets,
    workflows,
)

pytestmark = pytest.mark.workflows

ALL = workflows()
BY_NAME = {wf.name: wf for wf in ALL}


@pytest.fixture(scope="module")
def targets() -> set[str]:
    return makefile_targets()


def retrain_step(job: dict[str, Any]) -> dict[str, Any]:
    """The retrain job's `cepage retrain` step."""
    step: dict[str, Any] = next(s for s in job["steps"] if s.get("id") == "retrain")
    return step


def test_one_workflow_per_concern_and_dependabot() -> None:
    assert set(EXPECTED) <= set(BY_NAME), sorted(BY_NAME)
    dependabot = (ROOT / ".github" / "dependabot.yml").read_text()
    for ecosystem in ("pip", "github-actions", "docker", "terraform"):
        assert f"package-ecosystem: {ecosystem}\n" in dependabot, ecosystem


@pytest.mark.parametrize("wf", ALL, ids=lambda wf: wf.name)
def test_workflow_follows_the_rules(wf: Workflow, targets: set[str]) -> None:
    problems = [p for check in ALL_CHECKS for p in check(wf)]
    assert problems + check_make_targets(wf, targets) == []


@pytest.mark.parametrize("action", actions(), ids=lambda a: a.name)
def test_local_actions_follow_the_rules(action: Workflow, targets: set[str]) -> None:
    problems = check_pins(action) + check_secrets(action) + check_repo_paths(action)
    assert problems + check_make_targets(action, targets) == []


def test_the_ci_test_job_runs_exactly_what_ci_runs() -> None:
    assert check_ci_runs_ci_script(BY_NAME["ci"]) == []
    # .ci/run installs the tools, then hands over to the same target as a developer's `make test`.
    assert ci_run_command() == "make test"


def test_ci_runs_every_linter_and_terraform_checks(targets: set[str]) -> None:
    ci = BY_NAME["ci"]
    assert {"push", "pull_request"} <= set(ci.triggers)
    runs = "\n".join(str(step.get("run", "")) for _, step in ci.steps())
    assert "make lint typecheck" in runs and "make lint-config" in runs
    assert "terraform fmt -check" in runs and "terraform -chdir=iac validate" in runs
    assert "make infra-compliance ENV=${{ matrix.env }}" in runs
    # Prod is planned from main only; every branch plans dev (security item 4).
    matrix = ci.jobs["plan"]["strategy"]["matrix"]["env"]
    assert matrix == (
        "${{ fromJSON(github.ref == 'refs/heads/main' && '[\"dev\", \"prod\"]' || '[\"dev\"]') }}"
    )
    lint_config = (ROOT / "Makefile").read_text().split("\nlint-config:", 1)[1].split("\n\n")[0]
    for tool in ("yamllint", "actionlint", "hadolint", "ansible-lint", "check-jsonschema"):
        assert tool in lint_config, tool
    # The plan summary is posted by the one job allowed to write to pull requests, which runs
    # no repository code (no checkout).
    comment = ci.jobs["plan-comment"]
    assert comment["permissions"] == {"pull-requests": "write"}
    assert not any("checkout" in str(step.get("uses", "")) for step in comment["steps"])


def test_keys_that_can_change_an_environment_live_only_in_its_github_environment() -> None:
    """Security item 4: the plan uses the read-only `ci-plan` key; a job that holds a Scaleway
    key able to apply or push (SCW_ACCESS_KEY/SCW_SECRET_KEY) runs in a GitHub environment, whose
    deployment rules keep it to main and release tags, and prod refuses any other ref."""
    holders = []
    for wf in ALL:
        for job_id, job in wf.jobs.items():
            if re.search(r"secrets\.SCW_(ACCESS|SECRET)_KEY\b", yaml.safe_dump(job)):
                holders.append((wf.name, job_id))
                assert job.get("environment"), (
                    f"{wf.name}.{job_id} holds an apply key outside an environment"
                )
    assert ("deploy", "deploy") in holders and ("release", "images") in holders
    plan_env = BY_NAME["ci"].jobs["plan"]["env"]
    assert plan_env["SCW_ACCESS_KEY"] == "${{ secrets.SCW_PLAN_ACCESS_KEY }}"
    assert plan_env["SCW_SECRET_KEY"] == "${{ secrets.SCW_PLAN_SECRET_KEY }}"
    guard = BY_NAME["deploy"].jobs["deploy"]["steps"][0]
    assert "inputs.environment == 'prod'" in guard["if"] and "exit 1" in guard["run"]
    ssh = next(s for _, s in BY_NAME["deploy"].steps() if "SSH_KNOWN_HOSTS" in str(s.get("env")))
    assert "StrictHostKeyChecking yes" in ssh["run"]
    assert 'elif [[ "$ENV_NAME" == prod ]]' in ssh["run"]


def test_release_builds_pushes_and_chains_dev_then_prod() -> None:
    release = BY_NAME["release"]
    assert release.triggers["push"] == {"branches": ["main"], "tags": ["v*.*.*"]}
    assert {"workflow_call", "workflow_dispatch"} <= set(release.triggers)
    jobs = release.jobs
    runs = "\n".join(str(step.get("run", "")) for _, step in release.steps())
    assert "make docker-images" in runs and "images.sh push" in runs
    login = [s for _, s in release.steps() if "docker/login-action" in str(s.get("uses", ""))]
    assert login and login[0]["with"]["username"] == "nologin"
    assert "anchore/sbom-action" in str(jobs["sbom"]["steps"])
    dev, prod = jobs["deploy-dev"], jobs["deploy-prod"]
    assert dev["uses"] == prod["uses"] == "./.github/workflows/deploy.yml"
    assert (dev["with"]["environment"], prod["with"]["environment"]) == ("dev", "prod")
    assert "deploy-dev" in prod["needs"], "prod only after dev deployed and passed its smoke test"


def test_deploy_applies_deploys_smokes_and_rolls_back() -> None:
    deploy = BY_NAME["deploy"]
    assert {"workflow_call", "workflow_dispatch"} <= set(deploy.triggers)
    job = deploy.jobs["deploy"]
    # The GitHub environment of the same name: prod's required reviewers gate the prod deploy.
    assert job["environment"]["name"] == "${{ inputs.environment }}"
    steps = job["steps"]
    order = [str(s.get("run", "")) for s in steps]
    position = {
        key: next(i for i, run in enumerate(order) if key in run)
        for key in ("make infra-apply", "make deploy", "make smoke", "make rollback")
    }
    assert list(position) == sorted(position, key=position.__getitem__)
    rollback = steps[position["make rollback"]]
    assert rollback["if"] == "failure() && steps.deploy.outcome != 'skipped'"
    assert steps[position["make deploy"]]["id"] == "deploy"


def test_retrain_releases_only_a_promoted_model() -> None:
    retrain = BY_NAME["retrain"]
    assert "schedule" in retrain.triggers and "workflow_dispatch" in retrain.triggers
    step = retrain_step(retrain.jobs["retrain"])
    script = str(step["run"])
    assert ".venv/bin/cepage" in script and "retrain" in script
    assert re.search(r"^\s*0\) .*promoted=true", script, re.M)
    assert re.search(r"^\s*3\) .*promoted=false", script, re.M), "exit 3 = rejected, not a failure"
    release = retrain.jobs["release"]
    assert release["uses"] == "./.github/workflows/release.yml"
    # Its own status, not the chain's: the report job before the retrain may fail.
    assert release["if"] == (
        "${{ !cancelled() && needs.retrain.result == 'success' "
        "&& needs.retrain.outputs.promoted == 'true' }}"
    )
    assert "gate-summary" in str(retrain.jobs["retrain"]["steps"])


def test_the_weekly_retrain_learns_from_the_production_log_with_a_read_only_key() -> None:
    """`cepage retrain --from-production` on the production log in the environment's bucket, read
    with the `retrain` key (iac/iam.tf: ObjectStorageObjectsRead only), which only the retrain step
    holds and which is not an apply key (SCW_ACCESS_KEY/SCW_SECRET_KEY live in environments)."""
    job = BY_NAME["retrain"].jobs["retrain"]
    step = retrain_step(job)
    script = str(step["run"])
    assert "--from-production" in script
    assert 'CEPAGE_PREDICTION_LOG="s3://$PRODUCTION_LOG_BUCKET/production"' in script
    env = step["env"]
    assert env["PRODUCTION_LOG_BUCKET"] == "${{ vars.PRODUCTION_LOG_BUCKET }}"
    assert "vars.PRODUCTION_LOG_S3_ENDPOINT" in env["CEPAGE_PREDICTION_LOG_S3_ENDPOINT"]
    assert "vars.PRODUCTION_LOG_S3_REGION" in env["CEPAGE_PREDICTION_LOG_S3_REGION"]
    assert env["AWS_ACCESS_KEY_ID"] == "${{ secrets.RETRAIN_ACCESS_KEY }}"
    assert env["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.RETRAIN_SECRET_KEY }}"
    # Only this step: the summary steps and the release never see the object key.
    others = [s for s in job["steps"] if s is not step]
    assert "secrets.RETRAIN_" not in yaml.safe_dump(others)
    assert "AWS_" not in yaml.safe_dump(job["env"])
    iam = (ROOT / "iac" / "iam.tf").read_text()
    retrain_role = iam.split("    retrain = {", 1)[1].split("    }", 1)[0]
    assert '"ObjectStorageObjectsRead",' in retrain_role
    assert "Write" not in retrain_role and "Delete" not in retrain_role


def test_the_weekly_drift_report_runs_before_the_retrain_and_is_kept() -> None:
    """`cepage report` on the last 7 days of the same log with the same read-only key, in a job
    of its own that the retrain waits for but does not depend on; the page is uploaded."""
    retrain = BY_NAME["retrain"]
    job = retrain.jobs["report"]
    step = next(s for s in job["steps"] if s.get("id") == "report")
    script = str(step["run"])
    assert ".venv/bin/cepage report --since-days 7" in script
    assert 'CEPAGE_PREDICTION_LOG="s3://$PRODUCTION_LOG_BUCKET/production"' in script
    assert re.search(r'exit "\$rc"\s*$', script), "a report that failed must fail its job"
    # Exactly the retrain step's bucket, endpoint and key; only this step of the job holds them.
    assert step["env"] == retrain_step(retrain.jobs["retrain"])["env"]
    others = [s for s in job["steps"] if s is not step]
    assert "secrets.RETRAIN_" not in yaml.safe_dump(others)
    assert "AWS_" not in yaml.safe_dump(job.get("env") or {})
    out = re.search(r'--out "\$RUNNER_TEMP/([^"]+)"', script)
    assert out, "the report's page has a fixed path the upload names"
    upload = next(s for s in others if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "${{ runner.temp }}/" + out.group(1)
    # The same upload-artifact release as the CI workflow's.
    assert f"uses: {upload['uses']}" in BY_NAME["ci"].text
    # Before the retrain, which still runs when the report failed (a week without traffic).
    assert retrain.jobs["retrain"]["needs"] == "report"
    assert retrain.jobs["retrain"]["if"] == "${{ !cancelled() }}"


def test_the_release_publishes_the_model_card_of_what_it_packaged() -> None:
    steps = BY_NAME["release"].jobs["images"]["steps"]
    runs = [str(s.get("run", "")) for s in steps]
    package = next(i for i, run in enumerate(runs) if "cepage package" in run)
    card = next(i for i, run in enumerate(runs) if "cepage registry model-card" in run)
    assert package < card
    assert '--out "$RUNNER_TEMP/model-card"' in runs[card] and "GITHUB_STEP_SUMMARY" in runs[card]
    assert '--version "$version"' in runs[card]
    upload = next(s for s in steps[card:] if "actions/upload-artifact@" in str(s.get("uses", "")))
    assert upload["with"]["name"] == "model-card-${{ steps.tag.outputs.image_tag }}"
    assert upload["with"]["path"] == "${{ runner.temp }}/model-card/"


def _signing_identity(repository: str) -> re.Pattern[str]:
    """The certificate identity scripts/signatures.sh verifies, for ``repository``."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "signatures.sh"), "identity", repository],
        capture_output=True,
        text=True,
        check=True,
    )
    return re.compile(done.stdout.strip())


def test_released_images_are_signed_and_deployed_by_their_verified_digests() -> None:
    """The release signs what it built, by digest, keylessly (only its job holds an OIDC token),
    and a re-run checks the images already there are signed instead of vouching for them; the
    deploy checks the tag still names the digests the release signed, verifies each signature
    against this repository's release workflow on main or a v* tag before Ansible runs, and
    deploys those digests (IMAGE_DIGESTS)."""
    images = BY_NAME["release"].jobs["images"]
    assert images["permissions"] == {"contents": "read", "id-token": "write"}
    assert images["outputs"]["image_digests"] == "${{ steps.signed.outputs.digests }}"
    steps = images["steps"]
    runs = [str(s.get("run", "")) for s in steps]
    push = next(i for i, run in enumerate(runs) if "images.sh push" in run)
    sign = next(i for i, s in enumerate(steps) if s.get("id") == "signed")
    assert push < sign and "if" not in steps[sign]
    assert steps[sign]["env"]["BUILT_BEFORE"] == "${{ steps.existing.outputs.built }}"
    script = runs[sign]
    assert 'signatures.sh verify "$PREFIX"' in script and 'signatures.sh sign "$PREFIX"' in script
    assert any("sigstore/cosign-installer@" in str(s.get("uses", "")) for s in steps[:sign])
    assert BY_NAME["retrain"].jobs["release"]["permissions"]["id-token"] == "write"
    for job in ("deploy-dev", "deploy-prod"):
        passed = BY_NAME["release"].jobs[job]["with"]["image_digests"]
        assert passed == "${{ needs.images.outputs.image_digests }}"

    deploy = BY_NAME["deploy"].jobs["deploy"]["steps"]
    ids = [s.get("id") for s in deploy]
    verify, ansible = deploy[ids.index("digests")], deploy[ids.index("deploy")]
    assert ids.index("digests") < ids.index("deploy")
    assert verify["env"]["RELEASED"] == "${{ inputs.image_digests }}"
    assert "'. == $released'" in str(verify["run"])
    assert 'signatures.sh verify "$SIGNED_PREFIX"' in str(verify["run"])
    assert ansible["env"]["IMAGE_DIGESTS"] == "${{ steps.digests.outputs.file }}"
    assert 'IMAGE_DIGESTS="$IMAGE_DIGESTS"' in str(ansible["run"])


def test_the_signing_identity_is_this_repositorys_release_on_main_or_a_version_tag() -> None:
    identity = _signing_identity("acme.io/cepage")
    ours = "https://github.com/acme.io/cepage/.github/workflows/"
    for accepted in (
        "release.yml@refs/heads/main",
        "release.yml@refs/tags/v1.4.0",
        "release.yml@refs/tags/v1.4.0-rc.1",
    ):
        assert identity.search(ours + accepted), accepted
    for refused in (
        ours + "release.yml@refs/heads/feature",  # a branch: prod's gate is main
        ours + "ci.yml@refs/heads/main",  # another workflow of the repository
        ours + "release.yml@refs/tags/latest",
        "https://github.com/acmeXio/cepage/.github/workflows/release.yml@refs/heads/main",
        "https://github.com/other/cepage/.github/workflows/release.yml@refs/heads/main",
    ):
        assert not identity.search(refused), refused
    # The name above is also what another repository calling release.yml as a reusable workflow
    # gets: the verification checks the run's own repository too.
    script = (ROOT / "scripts" / "signatures.sh").read_text()
    assert '--certificate-github-workflow-repository "$GITHUB_REPOSITORY"' in script


def test_signatures_script_passes_each_digest_and_stops_on_the_first_unsigned(
    tmp_path: Path,
) -> None:
    """scripts/signatures.sh with a recording stand-in for cosign (the real one needs GitHub's
    OIDC token and Sigstore's services): every image of the digests file is verified by digest
    with the issuer, identity and repository; an unsigned one stops it with its name; a file
    that is not images.sh's JSON stops it before any check."""
    log = tmp_path / "cosign.log"
    fake = tmp_path / "bin" / "cosign"
    fake.parent.mkdir()
    fake.write_text(
        '#!/bin/sh\necho "$*" >> "$COSIGN_LOG"\n'
        'case "$*" in *"${COSIGN_FAIL_ON:-nothing}"*) exit 1;; esac\n'
    )
    fake.chmod(0o755)
    digests = tmp_path / "digests.json"
    digests.write_text(json.dumps({"service": "sha256:" + "a" * 64, "ui": "sha256:" + "b" * 64}))
    env = {
        "PATH": f"{fake.parent}:/usr/bin:/bin",
        "COSIGN_LOG": str(log),
        "GITHUB_REPOSITORY": "acme/cepage",
    }

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(ROOT / "scripts" / "signatures.sh"), *args],
            env={**env, **extra}, capture_output=True, text=True, check=False,
        )  # fmt: skip

    ok = run("verify", "rg.example/cepage-dev", str(digests))
    assert ok.returncode == 0, ok.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    assert calls[0].startswith("verify --certificate-oidc-issuer https://token.actions.")
    assert "--certificate-github-workflow-repository acme/cepage" in calls[0]
    assert calls[0].endswith("rg.example/cepage-dev/service@sha256:" + "a" * 64)
    assert calls[1].endswith("rg.example/cepage-dev/ui@sha256:" + "b" * 64)

    unsigned = run("verify", "rg.example/cepage-dev", str(digests), COSIGN_FAIL_ON="/ui@")
    assert unsigned.returncode == 1
    assert "::error::rg.example/cepage-dev/ui@sha256:" in unsigned.stdout

    log.unlink()
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    refused = run("verify", "rg.example/cepage-dev", str(bad))
    assert refused.returncode == 1 and "is not the JSON images.sh digests prints" in refused.stderr
    assert not log.exists()
    signed = run("sign", "rg.example/cepage-dev", str(digests))
    assert signed.returncode == 0
    assert log.read_text().splitlines()[0] == (
        "sign --yes rg.example/cepage-dev/service@sha256:" + "a" * 64
    )


def _step_index(job: dict[str, Any], text: str) -> int:
    return next(i for i, step in enumerate(job["steps"]) if text in str(step.get("run", "")))


def test_the_runner_reaches_the_hosts_only_through_its_own_temporary_rule() -> None:
    """Issue 12: the deploy, the release and both retrain jobs let their runner's address in on
    the bastion (scripts/ci_access.py open) before their first SSH or MLflow use, inside the job
    (for prod: after the approval), and remove it in an `always()` step after the last; MLflow
    and Prometheus only through playbooks/tunnel.sh, Ansible through the bastion."""
    jobs = {
        ("deploy", "deploy"): "$RUNNER_TEMP/outputs.json",
        ("release", "images"): "$RUNNER_TEMP/dev-outputs.json",
        ("retrain", "report"): "$RUNNER_TEMP/dev-outputs.json",
        ("retrain", "retrain"): "$RUNNER_TEMP/dev-outputs.json",
    }
    for (name, job_id), outputs in jobs.items():
        job = BY_NAME[name].jobs[job_id]
        opened = _step_index(job, "scripts.ci_access open")
        closed = _step_index(job, "scripts.ci_access close")
        assert opened < closed, (name, job_id)
        assert f'--outputs "{outputs}"' in str(job["steps"][opened]["run"])
        close = job["steps"][closed]
        assert close["if"] == "always() && steps.access.outcome != 'skipped'", (name, job_id)
        assert job["steps"][opened]["id"] == "access"
        assert close["env"]["RUNNER_IP"] == "${{ steps.access.outputs.ip }}"
        assert job.get("environment"), (name, job_id)  # the keys of an environment
    deploy = BY_NAME["deploy"].jobs["deploy"]
    assert deploy["env"]["CEPAGE_SSH_VIA_BASTION"] == "1"
    assert _step_index(deploy, "make infra-apply") < _step_index(deploy, "scripts.ci_access open")
    assert _step_index(deploy, "make rollback") < _step_index(deploy, "scripts.ci_access close")
    for step in deploy["steps"]:
        if "make smoke" in str(step.get("run", "")):
            assert str(step["run"]).startswith('playbooks/tunnel.sh "$ENV_NAME" -- make smoke')
            assert "CEPAGE_SMOKE_PROMETHEUS_URL" not in step.get("env", {})
    # No MLflow server or proxy password from the repository's settings any more.
    for wf in ALL:
        assert "MLFLOW_TRACKING" not in wf.text, wf.name
        assert "CEPAGE_PROXY_PASSWORD" not in wf.text, wf.name
    # The release lets go as soon as it has read MLflow: the long build runs without access.
    images = BY_NAME["release"].jobs["images"]
    assert _step_index(images, "scripts.ci_access close") < _step_index(
        images, "make docker-images"
    )


def test_a_scheduled_sweeper_removes_what_a_dead_run_left_open() -> None:
    sweeper = BY_NAME["access-sweeper"]
    (cron,) = sweeper.triggers["schedule"]
    minute, hour, *_ = cron["cron"].split()
    assert minute.isdigit() and hour == "*", "hourly"
    assert "workflow_dispatch" in sweeper.triggers
    dev = sweeper.jobs["sweep-dev"]
    assert dev["environment"] == "dev" and dev["permissions"] == {"contents": "read",
                                                                   "actions": "read"}  # fmt: skip
    runs = "\n".join(str(s.get("run", "")) for s in dev["steps"])
    assert "make -s infra-output ENV=dev" in runs and "scripts.ci_access sweep --outputs" in runs
    # Never while a run that may hold a rule is in progress (it would be cut off), checked in the
    # sweep's own step, right before it (not minutes earlier, before the set-up).
    sweep = next(s for s in dev["steps"] if "scripts.ci_access sweep" in str(s.get("run", "")))
    for workflow in ("deploy.yml", "release.yml", "retrain.yml"):
        assert sweep["run"].index(workflow) < sweep["run"].index("scripts.ci_access sweep")
    # Prod: checked with the read-only plan key, no environment (its reviewers would hold it).
    prod = sweeper.jobs["check-prod"]
    assert "environment" not in prod
    assert prod["env"]["SCW_SECRET_KEY"] == "${{ secrets.SCW_PLAN_SECRET_KEY }}"
    assert "scripts.ci_access sweep --dry-run" in str(prod["steps"])
    assert "ENV=prod" in str(prod["steps"])
    check = next(s for s in prod["steps"] if "--dry-run" in str(s.get("run", "")))
    assert check["run"].index("deploy.yml") < check["run"].index("scripts.ci_access sweep")
    assert prod["permissions"] == {"contents": "read", "actions": "read"}


def test_make_calls_are_parsed_as_the_shell_reads_them() -> None:
    script = (
        'make -s infra-output ENV="$ENV_NAME" > "$RUNNER_TEMP/out.json"\n'
        "  if true; then make lint typecheck; fi\n"
        "echo done && make smoke URL=${{ steps.urls.outputs.api }}\n"
        "x=$(make -C sub help)\n"
    )
    assert make_calls(script) == [["infra-output"], ["lint", "typecheck"], ["smoke"], ["help"]]


# --- Each rule catches a broken copy --------------------------------------------------------

Mutation = Callable[[Workflow], Workflow]


def edit_text(name: str, old: str, new: str) -> Workflow:
    original = BY_NAME[name]
    assert old in original.text, old
    return Workflow.parse(name, original.path, original.text.replace(old, new, 1))


def edit_data(name: str, change: Callable[[dict[str, Any]], None]) -> Workflow:
    original = BY_NAME[name]
    data = copy.deepcopy(original.data)
    change(data)
    return Workflow(name, original.path, original.text, data)


def _first_step_job(data: dict[str, Any]) -> dict[str, Any]:
    return next(job for job in data["jobs"].values() if "steps" in job)


def _add_step(data: dict[str, Any], step: dict[str, Any]) -> None:
    _first_step_job(data)["steps"].append(step)


CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"
BROKEN: dict[str, tuple[Callable[[], Workflow], Callable[[Workflow], list[str]], str]] = {
    "no-permissions": (
        lambda: edit_data("release", lambda d: d.pop("permissions")),
        check_permissions,
        "no top-level `permissions`",
    ),
    "write-all": (
        lambda: edit_data("ci", lambda d: d.update(permissions="write-all")),
        check_permissions,
        "read-only only",
    ),
    "job-writes-contents": (
        lambda: edit_data(
            "deploy", lambda d: d["jobs"]["deploy"].update(permissions={"contents": "write"})
        ),
        check_permissions,
        "deploy.deploy: writes ['contents']",
    ),
    "no-concurrency": (
        lambda: edit_data("retrain", lambda d: d.pop("concurrency")),
        check_concurrency,
        "no top-level `concurrency`",
    ),
    "no-timeout": (
        lambda: edit_data("ci", lambda d: _first_step_job(d).pop("timeout-minutes")),
        check_timeouts,
        "timeout-minutes is None",
    ),
    "timeout-beyond-ci-budget": (
        lambda: edit_data("deploy", lambda d: d["jobs"]["deploy"].update({"timeout-minutes": 600})),
        check_timeouts,
        "timeout-minutes is 600",
    ),
    "moving-tag": (
        lambda: edit_text("ci", CHECKOUT, "actions/checkout@v7"),
        check_pins,
        "actions/checkout@v7 is not pinned",
    ),
    "branch": (
        lambda: edit_text("release", CHECKOUT, "actions/checkout@main"),
        check_pins,
        "actions/checkout@main is not pinned",
    ),
    "sha-without-version-comment": (
        lambda: edit_text("deploy", CHECKOUT, CHECKOUT.split(" #", maxsplit=1)[0]),
        check_pins,
        "without a `# vX.Y.Z` comment",
    ),
    "no-ci-run": (
        lambda: edit_text("ci", "run: bash .ci/run", "run: make test-unit"),
        check_ci_runs_ci_script,
        "no job runs `bash .ci/run`",
    ),
    "ci-run-without-ci-true": (
        lambda: edit_data("ci", lambda d: d["jobs"]["test"].pop("env")),
        check_ci_runs_ci_script,
        "without CI=true",
    ),
    "stale-cache-key": (
        lambda: edit_text(
            "ci", "hashFiles('scripts/iac-tools.sh')", "hashFiles('scripts/policy-tools.sh')"
        ),
        check_repo_paths,
        "hashFiles('scripts/policy-tools.sh') matches no file",
    ),
    "missing-ci-script": (
        lambda: edit_text("release", "bash scripts/images.sh push", "bash scripts/image.sh push"),
        check_repo_paths,
        "release.images: runs scripts/image.sh, which does not exist",
    ),
    "plaintext-registry-password": (
        lambda: edit_text(
            "release", "password: ${{ secrets.SCW_SECRET_KEY }}", "password: hunter2"
        ),
        check_secrets,
        "a credential not taken from",
    ),
    "credential-from-a-variable": (
        lambda: edit_text(
            "deploy",
            "SCW_SECRET_KEY: ${{ secrets.SCW_SECRET_KEY }}",
            "SCW_SECRET_KEY: ${{ vars.SCW_SECRET_KEY }}",
        ),
        check_secrets,
        "env.SCW_SECRET_KEY: a credential not taken from",
    ),
    "secret-expanded-in-a-script": (
        lambda: edit_data("retrain", lambda d: _add_step(d, {"run": "echo ${{ secrets.X }}"})),
        check_secrets,
        "expands a secret inline",
    ),
    "scaleway-key-in-clear": (
        lambda: edit_data(
            "ci", lambda d: _add_step(d, {"run": "true", "env": {"K": "SCWABCDEFGHIJ1234567"}})
        ),
        check_secrets,
        "looks like a plaintext Scaleway access key",
    ),
    "host-use-before-access": (
        lambda: edit_data(
            "deploy",
            lambda d: d["jobs"]["deploy"]["steps"].insert(
                1, {"run": 'playbooks/tunnel.sh dev -- make smoke URL="$URL"'}
            ),
        ),
        check_runner_access,
        "reaches the hosts before access is opened",
    ),
    "access-never-closed": (
        lambda: edit_data(
            "retrain",
            lambda d: d["jobs"]["report"].update(
                steps=[
                    s
                    for s in d["jobs"]["report"]["steps"]
                    if "ci_access close" not in str(s.get("run", ""))
                ]
            ),
        ),
        check_runner_access,
        "retrain.report: access is not closed after its last use",
    ),
    "close-only-on-success": (
        lambda: edit_text(
            "deploy", "if: always() && steps.access.outcome != 'skipped'", "if: success()"
        ),
        check_runner_access,
        "the close step runs only if success()",
    ),
    "cepage-outside-the-tunnel": (
        lambda: edit_text(
            "release",
            'model="$(playbooks/tunnel.sh dev -- .venv/bin/cepage registry champion)"',
            'model="$(.venv/bin/cepage registry champion)"',
        ),
        check_runner_access,
        "runs cepage outside playbooks/tunnel.sh",
    ),
    "mlflow-from-a-variable": (
        lambda: edit_data(
            "retrain",
            lambda d: d["jobs"]["retrain"]["env"].update(
                MLFLOW_TRACKING_URI="${{ vars.MLFLOW_TRACKING_URI }}"
            ),
        ),
        check_runner_access,
        "MLflow from a variable",
    ),
    "uuid-secret-in-clear": (
        lambda: edit_data(
            "release",
            lambda d: d["jobs"]["images"]["env"].update(
                SCW_DEFAULT_PROJECT_ID="6f1c2d3e-1111-4222-8333-944455556666"
            ),
        ),
        check_secrets,
        "looks like a plaintext UUID",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_rule_catches_a_broken_copy(case: str) -> None:
    make_broken, check, expected = BROKEN[case]
    broken = make_broken()
    problems = check(broken)
    assert any(expected in problem for problem in problems), problems
    # The same check passes on the original: the problem is the mutation's.
    assert check(BY_NAME[broken.name]) == []


def test_a_missing_make_target_is_caught(targets: set[str]) -> None:
    broken = edit_text("deploy", "make deploy ENV=", "make deploy-everything ENV=")
    assert check_make_targets(broken, targets) == [
        "deploy.deploy: `make deploy-everything` is not a Makefile target"
    ]
    assert "deploy" in targets and "deploy-everything" not in targets


def test_workflows_folder_holds_only_checked_workflows() -> None:
    assert {p.suffix for p in WORKFLOWS.iterdir()} == {".yml"}


def test_every_secret_and_variable_is_documented() -> None:
    docs = (ROOT / "docs" / "ci-cd.md").read_text()
    used = {
        match
        for wf in ALL
        for match in re.findall(r"\b(?:secrets|vars)\.([A-Z][A-Z0-9_]*)", wf.text)
    }
    assert used, "no secret or variable found: the pattern is wrong"
    assert {name for name in used if f"`{name}`" not in docs} == set()
