"""scripts/bootstrap.py (`make bootstrap`, `make teardown`): what can run here runs for real.

Real here: the step runner and its state file (a failure stops the run with the state recorded,
a re-run continues), the infra step's `iac/infra.sh plan` with the real Terraform and Scaleway
provider on a copy of iac/ (dummy credentials, local state), the never-destroy guard fed the
`terraform show -json` of a real plan that deletes and replaces (built-in `terraform_data`
resources, local state, no provider), the state-bucket step's backend.hcl rewrite on a copy, the
check step's messages, the MLflow steps against a real `mlflow server` (first-model trains,
registers and promotes; a re-run skips it). The push: tests/docker/test_bootstrap_push.py.

Needs the Scaleway API, so not run here: `terraform apply` (infra, and the state bucket's
iac/bootstrap apply: replaced below by a stand-in `terraform` that only answers `output`),
`docker login` to Scaleway's registry, the Ansible deploys (MLflow alone, then everything) and
the SSH tunnel to the deployed hosts, the smoke test against a deployed API, and teardown's
Scaleway registry API calls (driven here against a local stand-in of that API).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from scripts import bootstrap
from scripts.bootstrap import BootstrapError, Context, State, Step
from stack.home import stack_env
from stack.processes import running
from tests.infra.conftest import dummy_env
from tests.infra.tf import IAC, Workdir
from tests.support.procs import BIN, ROOT, free_port
from tests.support.s3 import s3_server

pytestmark = pytest.mark.infra


def context(
    tmp_path: Path, environ: dict[str, str] | None = None, root: Path = ROOT, env: str = "dev"
) -> Context:
    state = State.load(tmp_path / "state" / f"{env}.json")
    return Context(env=env, state=state, root=root, environ=dict(environ or {}))


# --- the runner: resumable, recorded --------------------------------------------------------


def test_a_failing_step_stops_the_run_and_the_rerun_continues_there(tmp_path: Path) -> None:
    ran: list[str] = []
    broken = {"second": True}

    def step(name: str) -> Callable[[Context], None]:
        def run(_: Context) -> None:
            ran.append(name)
            if broken.get(name):
                raise BootstrapError(f"{name} is broken")

        return run

    steps = [Step(n, f"the {n} step", step(n)) for n in ("first", "second", "third")]
    ctx = context(tmp_path)
    with pytest.raises(BootstrapError, match=r"step second failed .*second is broken"):
        bootstrap.run_steps(ctx, steps)
    assert ran == ["first", "second"]
    saved = json.loads(ctx.state.path.read_text())
    assert list(saved["done"]) == ["first"]
    assert saved["failed"]["step"] == "second" and "second is broken" in saved["failed"]["error"]

    # A new process reads the state back: the finished step is skipped, the run continues.
    broken.clear()
    ran.clear()
    again = context(tmp_path)
    timings = bootstrap.run_steps(again, steps)
    assert ran == ["second", "third"] and list(timings) == ["second", "third"]
    saved = json.loads(again.state.path.read_text())
    assert list(saved["done"]) == ["first", "second", "third"] and "failed" not in saved

    # Everything done: nothing runs; FROM=step runs that step and the ones after it again.
    ran.clear()
    assert bootstrap.run_steps(context(tmp_path), steps) == {}
    assert ran == []
    bootstrap.run_steps(context(tmp_path), steps, start="second")
    assert ran == ["second", "third"]
    with pytest.raises(BootstrapError, match="FROM=nope is not a step"):
        bootstrap.run_steps(context(tmp_path), steps, start="nope")


def test_a_finished_step_whose_check_fails_runs_again(tmp_path: Path) -> None:
    ran: list[str] = []
    still = {"value": True}
    steps = [Step("only", "a step", lambda _: ran.append("only"), lambda _: still["value"])]
    bootstrap.run_steps(context(tmp_path), steps)
    bootstrap.run_steps(context(tmp_path), steps)
    assert ran == ["only"]
    still["value"] = False  # e.g. the champion is gone from the registry
    bootstrap.run_steps(context(tmp_path), steps)
    assert ran == ["only", "only"]


def test_the_steps_are_the_documented_ones_in_order() -> None:
    assert [s.name for s in bootstrap.STEPS] == [
        "check", "state-bucket", "vault", "infra", "registry-login", "mlflow-up", "first-model",
        "release", "deploy", "smoke",
    ]  # fmt: skip
    makefile = (ROOT / "Makefile").read_text()
    assert "python -m scripts.bootstrap run $(ENV)" in makefile
    assert "python -m scripts.bootstrap teardown $(ENV)" in makefile


# --- check -----------------------------------------------------------------------------------


def test_check_lists_every_missing_prerequisite(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(IAC / "envs", root / "iac" / "envs")
    ctx = context(tmp_path, {"PATH": str(tmp_path / "empty-bin")}, root)
    with pytest.raises(BootstrapError) as raised:
        bootstrap.check(ctx)
    message = str(raised.value)
    for expected in (
        "set SCW_ACCESS_KEY",
        "set SCW_SECRET_KEY",
        "set SCW_DEFAULT_PROJECT_ID",
        "terraform is not on PATH",
        "docker is not on PATH",
        "ssh is not on PATH",
        "TF_VAR_admin_cidrs",
        "TF_VAR_ssh_public_keys",
        "ANSIBLE_VAULT_PASSWORD_FILE",
        "--init-vault",
        "vault.example.yml",
    ):
        assert expected in message, message

    # A vault in clear is refused with the command that encrypts it.
    ctx.vault.parent.mkdir(parents=True)
    ctx.vault.write_text("vault_cepage_feedback_key: x\n")
    assert any(
        "is not encrypted: ansible-vault encrypt" in p for p in bootstrap.vault_problems(ctx)
    )
    ctx.vault.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    ctx.environ["ANSIBLE_VAULT_PASSWORD_FILE"] = "/dev/null"
    assert bootstrap.vault_problems(ctx) == []


def test_the_generated_vault_has_every_required_value() -> None:
    environ = {"access_key": "SCWABCDEFGHIJKLMNOPQ", "secret_key": "s3cr3t"}
    first = bootstrap.vault_text(environ, "$2b$10$hash")
    values: dict[str, str] = {}
    for line in first.splitlines()[1:]:
        if not line.startswith("#"):
            key, value = line.split(": ", 1)
            values[key] = json.loads(value)
    assert values["vault_cepage_scw_access_key"] == "SCWABCDEFGHIJKLMNOPQ"
    assert values["vault_cepage_scw_secret_key"] == "s3cr3t"
    assert values["vault_cepage_proxy_password_hash"] == "$2b$10$hash"
    assert len(values["vault_cepage_postgres_password"]) == 48
    assert len(values["vault_cepage_feedback_key"]) == 64
    # Every value the example vault requires (its uncommented keys) is written.
    example = (ROOT / "playbooks" / "inventories" / "dev" / "vault.example.yml").read_text()
    required = {line.split(":")[0] for line in example.splitlines() if line.startswith("vault_")}
    assert required == set(values)
    assert bootstrap.vault_text(environ, "h") != bootstrap.vault_text(environ, "h"), "generated"


# --- state-bucket ----------------------------------------------------------------------------

STAND_IN_TERRAFORM = """
import json, os, sys
with open(os.environ["RECORD"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["output", "-raw"]:
    sys.stdout.write("cepage-tfstate-acme")
"""


def test_the_state_bucket_step_writes_the_bucket_into_both_backends(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(IAC, root / "iac", ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    stand_in = tmp_path / "terraform.py"
    stand_in.write_text(STAND_IN_TERRAFORM)
    record = tmp_path / "calls.jsonl"
    environ = dict(dummy_env(), TERRAFORM=f"{sys.executable} {stand_in}", RECORD=str(record))
    ctx = context(tmp_path, environ, root)

    with pytest.raises(BootstrapError, match="SUFFIX=yourorg"):
        bootstrap.state_bucket(ctx)
    ctx.suffix = "acme"
    bootstrap.state_bucket(ctx)
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    # iac/infra.sh bootstrap: init, apply (it asks: never -auto-approve), then the bucket's name.
    assert [c[0] for c in calls] == ["init", "apply", "output", "output"]
    assert "-var" in calls[1] and "name_suffix=acme" in calls[1]
    for env in ("dev", "prod"):
        text = (root / "iac" / "envs" / f"{env}.backend.hcl").read_text()
        assert 'bucket = "cepage-tfstate-acme"' in text and 'CHANGE-ME"' not in text
        assert f'key    = "cepage/{env}/terraform.tfstate"' in text, "the rest is unchanged"

    # Set: the step does nothing (no terraform call), and its check says it is still done.
    record.unlink()
    bootstrap.state_bucket(ctx)
    assert not record.exists()
    assert bootstrap._bucket_still_set(ctx)
    with pytest.raises(BootstrapError, match="is not a bucket name"):
        bootstrap.write_backend_bucket(root / "iac", "Bad Name\n")


# --- infra: the real plan, the never-destroy guard --------------------------------------------

TERRAFORM_FOR_INFRA_SH = """
import os, shlex, subprocess, sys
args = sys.argv[1:]
if args[:1] == ["init"]:
    # The copy has a local backend override (no state bucket): drop the S3 backend's settings.
    args = [a for a in args if not a.startswith("-backend-config=") and a != "-reconfigure"]
sys.exit(subprocess.run(shlex.split(os.environ["REAL_TERRAFORM"]) + args).returncode)
"""


def test_the_infra_step_plans_for_real_and_finds_nothing_to_destroy(
    clone: Callable[..., Workdir], tmp_path: Path
) -> None:
    workdir = clone()
    backend = workdir.path / "envs" / "dev.backend.hcl"
    backend.write_text(backend.read_text().replace("CHANGE-ME", "cepage-tfstate-test"))
    wrapper = tmp_path / "terraform.py"
    wrapper.write_text(TERRAFORM_FOR_INFRA_SH)
    environ = dict(dummy_env(), TERRAFORM=f"{sys.executable} {wrapper}")
    environ["REAL_TERRAFORM"] = " ".join(workdir.terraform)
    if workdir.cli_config is not None:
        environ["TF_CLI_CONFIG_FILE"] = str(workdir.cli_config)
    ctx = context(tmp_path, environ, workdir.path.parent)

    plan = bootstrap.plan_infra(ctx)
    assert bootstrap.plan_file(ctx.iac, "dev").exists(), "the saved plan iac/infra.sh applies"
    created = {
        rc["type"] for rc in plan["resource_changes"] if rc["change"]["actions"] == ["create"]
    }
    assert {"scaleway_instance_server", "scaleway_registry_namespace"} <= created
    assert bootstrap.destructive_changes(plan) == []
    assert plan["variables"]["environment"]["value"] == "dev"


def test_the_guard_refuses_a_real_plan_that_deletes_or_replaces(
    terraform: list[str], tmp_path: Path
) -> None:
    # Built-in resources: a real plan with local state, no provider to download, no API.
    work = Workdir(tmp_path / "module", terraform, None, dict(dummy_env()))
    work.path.mkdir()
    resources = {
        "keep": "",
        "gone": "",
        "swap": 'triggers_replace = "1"',
    }
    (work.path / "main.tf").write_text(
        "".join(f'resource "terraform_data" "{n}" {{\n  {b}\n}}\n' for n, b in resources.items())
    )
    work.check("init", "-input=false", "-no-color")
    work.check("apply", "-input=false", "-auto-approve", "-no-color")
    (work.path / "main.tf").write_text(
        'resource "terraform_data" "keep" {}\n'
        'resource "terraform_data" "swap" {\n  triggers_replace = "2"\n}\n'
    )
    _, plan = work.plan(name="destroys")
    assert plan is not None
    assert sorted(bootstrap.destructive_changes(plan)) == [
        "terraform_data.gone (delete)",
        "terraform_data.swap (replace)",
    ]
    with pytest.raises(BootstrapError, match="never does") as refused:
        bootstrap.refuse_destruction(plan)
    assert "terraform_data.gone" in str(refused.value)
    assert "terraform_data.keep" not in str(refused.value)


# --- the MLflow steps against a real MLflow server --------------------------------------------


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` (SQLite store, artifacts served by the server, as deployed)."""
    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    argv = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1", "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}"]
    argv += ["--serve-artifacts", "--artifacts-destination", str(base / "artifacts")]
    url = f"http://127.0.0.1:{port}"
    with running(argv, log=base / "mlflow.log", ready_url=f"{url}/health", env=stack_env(base)):
        yield url


def test_first_model_registers_and_promotes_a_champion_then_is_skipped(
    mlflow_server: str, tmp_path: Path
) -> None:
    environ = stack_env(tmp_path / "home", CEPAGE_BOOTSTRAP_MLFLOW_URI=mlflow_server)
    del environ["MLFLOW_TRACKING_URI"]  # only the bootstrap's own variable points at the server
    ctx = context(tmp_path, environ)
    assert bootstrap.champion_version(ctx) is None

    first_model = next(s for s in bootstrap.STEPS if s.name == "first-model")
    bootstrap.run_steps(ctx, [first_model])
    assert bootstrap.champion_version(ctx) == "1"
    assert not (tmp_path / "home" / "mlflow.db").exists(), "trained against the server"

    # Re-run: the step is recorded and its check finds the champion: nothing trains.
    assert bootstrap.run_steps(context(tmp_path, environ), [first_model]) == {}
    # A lost state file: the step runs, sees the champion and trains nothing either.
    ctx.state.path.unlink()
    bootstrap.run_steps(context(tmp_path, environ), [first_model])
    assert bootstrap.champion_version(ctx) == "1"


# --- teardown ----------------------------------------------------------------------------------


class FakeRegistryApi(BaseHTTPRequestHandler):
    """Scaleway's registry API, the three calls teardown makes (a stand-in: the real one needs
    an account)."""

    images: ClassVar[dict[str, str]] = {f"img-{i}": f"name-{i}" for i in range(150)}  # 2 pages
    calls: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.calls.append(f"GET {self.path}")
        assert self.headers["X-Auth-Token"] == "secret"
        if self.path.startswith("/registry/v1/regions/fr-par/namespaces?"):
            body: dict[str, Any] = {
                "namespaces": [{"id": "ns-1", "name": "cepage-dev"}],
                "total_count": 1,
            }
        else:
            assert "namespace_id=ns-1" in self.path
            page = int(self.path.split("page=")[1].split("&")[0])
            items = sorted(self.images.items())[(page - 1) * 100 : page * 100]
            body = {"images": [{"id": i, "name": n} for i, n in items], "total_count": 150}
        self._send(body)

    def do_DELETE(self) -> None:
        self.calls.append(f"DELETE {self.path}")
        self._send({})

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_teardown_asks_first_and_deletes_every_registry_image(tmp_path: Path) -> None:
    keys = {"SCW_ACCESS_KEY": "SCWX", "SCW_SECRET_KEY": "secret", "SCW_DEFAULT_PROJECT_ID": "p"}
    ctx = context(tmp_path, keys)
    ctx.state.save()
    with pytest.raises(BootstrapError, match="not confirmed"):
        bootstrap.teardown(ctx, yes=False, empty=False, ask=lambda _: "prod")
    assert ctx.state.path.exists(), "nothing removed"

    # prod keeps non-empty buckets: teardown stops before anything unless told to empty them.
    prod = context(tmp_path, keys, env="prod")
    prod._outputs = {"buckets": {"backups": "cepage-prod-backups"}, "registry_endpoint": "x/y"}
    with pytest.raises(BootstrapError, match="EMPTY_BUCKETS=1"):
        bootstrap.teardown(prod, yes=True, empty=False)
    assert not bootstrap.force_destroys_buckets(IAC, "prod")
    assert bootstrap.force_destroys_buckets(IAC, "dev")

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistryApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ctx.environ["SCW_API_URL"] = f"http://127.0.0.1:{server.server_port}"
        deleted = bootstrap.delete_registry_images(ctx, "rg.fr-par.scw.cloud/cepage-dev")
    finally:
        server.shutdown()
    assert len(deleted) == 150 and deleted[0].startswith("rg.fr-par.scw.cloud/cepage-dev/name-")
    assert (
        sum(
            c.startswith("DELETE /registry/v1/regions/fr-par/images/")
            for c in FakeRegistryApi.calls
        )
        == 150
    )
    assert "project_id=p" in FakeRegistryApi.calls[0]


def test_the_api_url_falls_back_to_the_base_url() -> None:
    assert (
        bootstrap.api_url({"urls": {"api": "https://api.x", "base": "https://x"}})
        == "https://api.x"
    )
    assert bootstrap.api_url({"urls": {"api": None, "base": "http://1.2.3.4"}}) == "http://1.2.3.4"
    assert bootstrap.registry_host("rg.fr-par.scw.cloud/cepage-dev") == "rg.fr-par.scw.cloud"
    vars_ = bootstrap.mlflow_only_vars({"database": None})
    assert vars_["cepage_stack_services"] == ["mlflow", "prometheus", "postgres"]
    assert vars_["cepage_stack_record_release"] is False
    managed = bootstrap.mlflow_only_vars({"database": {"host": "10.0.0.2"}})
    assert managed["cepage_stack_services"] == ["mlflow", "prometheus"]


def test_the_role_knows_the_variables_the_mlflow_only_deploy_sets() -> None:
    role = ROOT / "playbooks" / "roles" / "cepage_stack"
    defaults = (role / "defaults" / "main.yml").read_text()
    for name in bootstrap.mlflow_only_vars({}):
        assert f"\n{name}:" in defaults, name
    tasks = (role / "tasks" / "main.yml").read_text()
    assert tasks.count("cepage_stack_record_release | bool") == 2


class FakeSecretManager(BaseHTTPRequestHandler):
    """Scaleway Secret Manager's access call, answering with the ci-apply-dev key pair (a
    stand-in: the real one needs an account)."""

    pair: ClassVar[dict[str, str]] = {
        "access_key": "SCWCIAPPLYDEV0000000",
        "secret_key": "11111111-2222-3333-4444-555555555555",  # pragma: allowlist secret
    }

    def do_GET(self) -> None:
        assert self.headers["X-Auth-Token"] == OPERATOR_SECRET
        assert self.path == (
            "/secret-manager/v1beta1/regions/fr-par/secrets/"
            "0d0d0d0d-0000-4000-8000-000000000001/versions/latest/access"
        ), self.path
        data = base64.b64encode(json.dumps(self.pair).encode()).decode()
        body = json.dumps({"secret_id": "x", "revision": 1, "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


OPERATOR_SECRET = "0b5e7a9c-1d2f-4a6b-8c3d-9e0f1a2b3c4d"  # pragma: allowlist secret
CI_KEY_OUTPUT = """
import json, sys
assert sys.argv[1:] == ["output", "-json", "ci_key_secret_ids"], sys.argv
print(json.dumps({"ci-plan": "fr-par/0d0d0d0d-0000-4000-8000-000000000000",
                  "ci-apply-dev": "fr-par/0d0d0d0d-0000-4000-8000-000000000001"}))
"""


def test_init_vault_writes_the_apply_key_never_the_operators(tmp_path: Path) -> None:
    """INIT_VAULT: the deployer's key in the vault (which CI gets as ANSIBLE_VAULT_YML) is the
    environment's ci-apply key read from Secret Manager, not the operator's own SCW_* key (which
    manages IAM for the organisation); encrypted by the real ansible-vault."""
    root = tmp_path / "repo"
    shutil.copytree(
        ROOT / "playbooks",
        root / "playbooks",
        ignore=shutil.ignore_patterns("vault.yml", "terraform.json"),
    )
    (root / "iac" / "bootstrap").mkdir(parents=True)
    stand_in = tmp_path / "terraform.py"
    stand_in.write_text(CI_KEY_OUTPUT)
    password_file = tmp_path / "vault-password"
    password_file.write_text("correct horse battery staple\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSecretManager)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    environ = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "SCW_ACCESS_KEY": "SCWOPERATOR000000000",
        "SCW_SECRET_KEY": OPERATOR_SECRET,
        "ANSIBLE_VAULT_PASSWORD_FILE": str(password_file),
        "TERRAFORM": f"{sys.executable} {stand_in}",
        "SCW_API_URL": f"http://127.0.0.1:{server.server_port}",
    }
    ctx = context(tmp_path, environ, root)
    ctx.init_vault = True
    # check lets a missing vault through when the vault step will write it, not otherwise.
    assert bootstrap.vault_problems(ctx, will_write=True) == []
    assert bootstrap.vault_problems(ctx) != []
    try:
        bootstrap.vault(ctx)
    finally:
        server.shutdown()
    assert ctx.vault.read_text().startswith("$ANSIBLE_VAULT;")
    assert ctx.vault.stat().st_mode & 0o077 == 0
    assert bootstrap.vault_problems(ctx) == []
    shown = subprocess.run(
        [str(BIN / "ansible-vault"), "view", str(ctx.vault)],
        env=environ, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    values = yaml.safe_load(shown.stdout)
    assert values["vault_cepage_scw_access_key"] == FakeSecretManager.pair["access_key"]
    assert values["vault_cepage_scw_secret_key"] == FakeSecretManager.pair["secret_key"]
    assert OPERATOR_SECRET not in shown.stdout
    assert values["vault_cepage_proxy_password_hash"].startswith("$2")
    operator = ctx.state.path.with_name("dev-proxy-password")
    assert operator.stat().st_mode & 0o077 == 0 and len(operator.read_text().strip()) >= 24
    # The hash is a real bcrypt of the password the operator keeps: the proxy will accept it.
    import bcrypt

    assert bcrypt.checkpw(
        operator.read_text().strip().encode(), values["vault_cepage_proxy_password_hash"].encode()
    )


def test_teardown_empties_versioned_buckets_over_the_s3_api(tmp_path: Path) -> None:
    """prod's buckets are versioned and kept by Terraform unless empty: `EMPTY_BUCKETS=1` deletes
    every object version, against a real S3-compatible server (moto's)."""
    import boto3

    environ = {
        "SCW_ACCESS_KEY": "SCWABCDEFGHIJKLMNOPQ",
        "SCW_SECRET_KEY": "secret",
    }  # pragma: allowlist secret
    ctx = context(tmp_path, environ, tmp_path)
    with s3_server(tmp_path) as endpoint:
        s3 = boto3.resource(
            "s3",
            endpoint_url=endpoint,
            region_name="fr-par",
            aws_access_key_id=environ["SCW_ACCESS_KEY"],
            aws_secret_access_key=environ["SCW_SECRET_KEY"],
        )
        for name in ("cepage-prod-backups", "cepage-prod-production-log"):
            bucket = s3.create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": "fr-par"}
            )
            bucket.Versioning().enable()
            for version in range(3):
                bucket.put_object(Key="dump.sql.gz", Body=f"v{version}".encode())
            assert len(list(bucket.object_versions.all())) == 3
        bootstrap.empty_buckets(
            ctx, ["cepage-prod-backups", "cepage-prod-production-log"], endpoint, "fr-par"
        )
        for name in ("cepage-prod-backups", "cepage-prod-production-log"):
            assert list(s3.Bucket(name).object_versions.all()) == [], name


def test_the_command_stops_at_check_with_the_state_recorded(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CEPAGE_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bootstrap", "run", "dev"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[run ] 1. check" in done.stdout and "[run ] 10. smoke" in done.stdout
    assert "step check failed" in done.stderr and "set SCW_ACCESS_KEY" in done.stderr
    assert "run the same command again" in done.stderr
    state = json.loads((tmp_path / "home" / "bootstrap" / "dev.json").read_text())
    assert state["failed"]["step"] == "check" and state["done"] == {}
    usage = subprocess.run(
        [sys.executable, "-m", "scripts.bootstrap", "run", "staging"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
