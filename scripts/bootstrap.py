"""From an empty Scaleway project to a serving environment, in one resumable command.

    make bootstrap ENV=dev [SUFFIX=yourorg] [FROM=step]   (python -m scripts.bootstrap run ...)
    make teardown ENV=dev                       (python -m scripts.bootstrap teardown ...)

The first release cannot come from CI: the release workflow packages the @champion of the
deployed MLflow, and the deploy workflow needs images already in the registry. This program cuts
that loop from the operator's machine, one named step after the other:

    check          credentials, tools, operator inputs, the vault's password
    state-bucket   the Terraform state bucket (iac/bootstrap), its name written into
                   iac/envs/*.backend.hcl
    vault          the environment's encrypted Ansible vault; INIT_VAULT writes it, with the
                   ci-apply-ENV key (from Secret Manager) as the deployer's, never yours
    infra          plan, refuse any delete or replace, apply the saved plan
    registry-login docker login to the environment's Container Registry
    mlflow-up      the MLflow image pushed, then a first deploy of MLflow (and its database) only
    first-model    train, register and promote a first model against the deployed MLflow
    release        package the champion, build and push every image, record their digests
    deploy         the whole stack, pinned by digest
    smoke          the smoke test against the API (and Prometheus, through the SSH tunnel)

Each finished step is recorded in .cepage/bootstrap/ENV.json; a re-run skips it (unless its own
check says the work is gone) and continues where the last run stopped. Every step is also
idempotent by itself, and nothing here ever destroys: the infra step refuses a plan that deletes
or replaces a resource. ``teardown`` is the one command that removes an environment.

The deployed MLflow is reached through ``playbooks/tunnel.sh ENV -- COMMAND`` (an SSH tunnel that
exports MLFLOW_TRACKING_URI for COMMAND); CEPAGE_BOOTSTRAP_MLFLOW_URI=URL uses that server
directly instead (tests, or an MLflow you reach otherwise).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "prod")
REQUIRED_VARIABLES = ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID")
REQUIRED_TOOLS = {
    "docker": "https://docs.docker.com/engine/install/",
    "ssh": "the OpenSSH client (apt-get install openssh-client)",
    "skopeo": "apt-get install skopeo (scripts/images.sh reads the registry with it)",
}
# The images a first MLflow-only deploy runs (postgres is an upstream image, pulled as it is).
MLFLOW_IMAGES = ("mlflow",)
PLACEHOLDER_BUCKET = 'bucket = "CHANGE-ME"'
SCW_API = "https://api.scaleway.com"


class BootstrapError(Exception):
    """A step cannot go on: the message says what is wrong and what to do."""


# --- the state file and the step runner ------------------------------------------------------


@dataclass
class State:
    """What the runs of one environment finished, kept in a JSON file between runs."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("done", {})
        data.setdefault("values", {})
        return cls(path, data)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)

    def is_done(self, step: str) -> bool:
        return step in self.data["done"]

    def mark_done(self, step: str, seconds: float) -> None:
        self.data["done"][step] = {"at": _now(), "seconds": round(seconds, 1)}
        self.data.pop("failed", None)
        self.save()

    def mark_failed(self, step: str, error: str) -> None:
        self.data["failed"] = {"step": step, "at": _now(), "error": error}
        self.save()

    def forget(self, steps: Sequence[str]) -> None:
        for step in steps:
            self.data["done"].pop(step, None)
        self.save()

    def value(self, key: str) -> Any:
        return self.data["values"].get(key)

    def remember(self, key: str, value: Any) -> None:
        self.data["values"][key] = value
        self.save()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Step:
    """One named step. ``still_done`` (when given) is asked on a re-run of a finished step:
    False means its work is gone or must be redone, and the step runs again."""

    name: str
    summary: str
    run: Callable[[Context], None]
    still_done: Callable[[Context], bool] | None = None


def run_steps(ctx: Context, steps: Sequence[Step], start: str | None = None) -> dict[str, float]:
    """Run ``steps`` in order, skipping the finished ones; from ``start`` on, every step runs.

    A failing step is recorded in the state file and stops the run (the error propagates); the
    next run starts again at it. Returns the seconds each step took in this run.
    """
    names = [s.name for s in steps]
    if start is not None:
        if start not in names:
            raise BootstrapError(f"FROM={start} is not a step: {', '.join(names)}")
        ctx.state.forget(names[names.index(start) :])
    to_run = [s for s in steps if not _finished(ctx, s)]
    print(f"cepage bootstrap of {ctx.env}: state in {_rel(ctx.state.path)}")
    for index, step in enumerate(steps, 1):
        mark = "run " if step in to_run else "done"
        print(f"  [{mark}] {index}. {step.name:<15} {step.summary}")
    timings: dict[str, float] = {}
    for index, step in enumerate(steps, 1):
        if step not in to_run:
            continue
        print(f"\n==> [{index}/{len(steps)}] {step.name}: {step.summary}", flush=True)
        started = time.monotonic()
        try:
            step.run(ctx)
        except Exception as error:  # recorded whatever it is; the run stops here
            ctx.state.mark_failed(step.name, str(error))
            raise BootstrapError(
                f"step {step.name} failed after {time.monotonic() - started:.0f} s: {error}\n"
                f"Fix it and run the same command again: the finished steps are skipped."
            ) from error
        timings[step.name] = time.monotonic() - started
        ctx.state.mark_done(step.name, timings[step.name])
        print(f"<== {step.name} done in {_duration(timings[step.name])}")
    return timings


def _finished(ctx: Context, step: Step) -> bool:
    if not ctx.state.is_done(step.name):
        return False
    return step.still_done is None or step.still_done(ctx)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# --- the context: paths, environment, commands -------------------------------------------------


@dataclass
class Context:
    """One environment's bootstrap: where things are and how commands run."""

    env: str
    state: State
    root: Path = ROOT
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    suffix: str = ""
    init_vault: bool = False
    _outputs: dict[str, Any] | None = None

    @property
    def iac(self) -> Path:
        return self.root / "iac"

    @property
    def bin(self) -> Path:
        """The venv's scripts (cepage, ansible-playbook, ansible-vault): this interpreter's."""
        return Path(sys.executable).parent

    @property
    def terraform(self) -> list[str]:
        return shlex.split(self.environ.get("TERRAFORM") or "terraform")

    @property
    def vault(self) -> Path:
        return (
            self.root / "playbooks" / "inventories" / self.env / "group_vars" / "all" / "vault.yml"
        )

    @property
    def digests_file(self) -> Path:
        return self.state.path.with_name(f"{self.env}-digests.json")

    def call(
        self,
        argv: Sequence[str | Path],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = False,
        stdin: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (its output streams to the terminal unless captured)."""
        args = [str(a) for a in argv]
        print(f"    $ {shlex.join(args)}", flush=True)
        # The operator's own tools (terraform, docker, make, the repository's scripts) with
        # argument lists this program builds; never a shell.
        done = subprocess.run(  # nosec B603
            args,
            env={**self.environ, **(env or {})},
            cwd=cwd or self.root,
            input=stdin,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            detail = (done.stderr or "").strip()[-2000:] if capture else ""
            raise BootstrapError(
                f"`{shlex.join(args)}` exited with {done.returncode}"
                + (f":\n{detail}" if detail else "")
            )
        return done

    def outputs(self) -> dict[str, Any]:
        """Terraform's outputs of the environment (``iac/infra.sh output``), read once a run."""
        if self._outputs is None:
            done = self.call([self.iac / "infra.sh", "output", self.env], capture=True)
            self._outputs = {k: v["value"] for k, v in json.loads(done.stdout).items()}
        return self._outputs

    def with_mlflow(
        self, argv: Sequence[str | Path], capture: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` against the deployed MLflow: through the SSH tunnel, or the server
        CEPAGE_BOOTSTRAP_MLFLOW_URI names."""
        direct = self.environ.get("CEPAGE_BOOTSTRAP_MLFLOW_URI", "")
        if direct:
            return self.call(
                argv, env={"MLFLOW_TRACKING_URI": direct}, capture=capture, check=check
            )
        tunnel = self.root / "playbooks" / "tunnel.sh"
        return self.call([tunnel, self.env, "--", *argv], capture=capture, check=check)


# --- 1. check ----------------------------------------------------------------------------------


def check(ctx: Context) -> None:
    """Everything the later steps need, all problems listed at once."""
    problems = [f"set {v} (docs/install.md, section 3.2)" for v in missing_variables(ctx.environ)]
    for tool, how in {
        **REQUIRED_TOOLS,
        ctx.terraform[0]: "https://developer.hashicorp.com/terraform/install",
    }.items():
        if shutil.which(tool, path=ctx.environ.get("PATH")) is None:
            problems.append(f"{tool} is not on PATH: {how}")
    problems += operator_input_problems(ctx)
    problems += vault_problems(ctx, will_write=ctx.init_vault)
    if problems:
        raise BootstrapError("not ready:\n  - " + "\n  - ".join(problems))
    print("    credentials, tools, operator inputs and the encrypted vault are in place")


def missing_variables(environ: Mapping[str, str]) -> list[str]:
    return [v for v in REQUIRED_VARIABLES if not environ.get(v)]


def operator_input_problems(ctx: Context) -> list[str]:
    local = ctx.iac / "envs" / f"{ctx.env}.local.tfvars"
    if local.exists():
        return []
    return [
        f"set TF_VAR_{name} or write it into {_rel(local)} (docs/install.md, section 3.2)"
        for name in ("admin_cidrs", "ssh_public_keys")
        if not ctx.environ.get(f"TF_VAR_{name}")
    ]


def has_vault_password(ctx: Context) -> bool:
    env = ctx.environ
    return bool(env.get("ANSIBLE_VAULT_PASSWORD_FILE") or env.get("ANSIBLE_VAULT_PASSWORD"))


def vault_problems(ctx: Context, will_write: bool = False) -> list[str]:
    """What is wrong with the environment's vault; ``will_write``: the vault step writes a
    missing one (INIT_VAULT), so only its password is needed now."""
    problems = []
    if not has_vault_password(ctx):
        problems.append(
            "set ANSIBLE_VAULT_PASSWORD_FILE (a file holding the vault password, never in git)"
        )
    if not ctx.vault.exists() and will_write:
        pass
    elif not ctx.vault.exists():
        example = ctx.vault.parents[2] / "vault.example.yml"
        problems.append(
            f"no {_rel(ctx.vault)}: run again with --init-vault (make bootstrap ... INIT_VAULT=1) "
            f"to write one with generated values, or copy {_rel(example)} there, fill it in and "
            f"`ansible-vault encrypt {_rel(ctx.vault)}`"
        )
    elif not ctx.vault.read_text().startswith("$ANSIBLE_VAULT"):
        problems.append(
            f"{_rel(ctx.vault)} is not encrypted: ansible-vault encrypt {_rel(ctx.vault)}"
        )
    return problems


def vault(ctx: Context) -> None:
    """The environment's vault: checked when it exists; with INIT_VAULT, written now (after the
    state bucket, whose bootstrap made the CI keys) with the ci-apply-ENV key as the deployer's."""
    if ctx.vault.exists() or not ctx.init_vault:
        problems = vault_problems(ctx)
        if problems:
            raise BootstrapError("\n  - ".join(["the vault:", *problems]))
        print(f"    {_rel(ctx.vault)} is there, encrypted")
        return
    init_vault(ctx, ci_apply_key(ctx))


def ci_apply_key(ctx: Context) -> dict[str, str]:
    """The ci-apply-ENV key pair, from Secret Manager (iac/bootstrap's output names it): the
    deployer's key in the vault is this environment's apply key, never the operator's own,
    which can manage IAM for the whole organisation and would reach GitHub with the vault."""
    done = bootstrap_output(ctx, "-json", "ci_key_secret_ids", check=False)
    name = f"ci-apply-{ctx.env}"
    try:
        secret_id = str(json.loads(done.stdout)[name])
    except (ValueError, KeyError, TypeError) as error:
        raise BootstrapError(
            f"cannot read {name}'s Secret Manager id from iac/bootstrap's outputs (its state is "
            "local to the machine that made the state bucket: run there, or write the vault by "
            f"hand from vault.example.yml with the {name} key)"
        ) from error
    region, _, uuid = secret_id.rpartition("/")
    answer = scaleway_api(
        ctx,
        "GET",
        f"/secret-manager/v1beta1/regions/{region}/secrets/{uuid}/versions/latest/access",
    )
    pair = json.loads(base64.b64decode(str(answer["data"])))
    return {"access_key": str(pair["access_key"]), "secret_key": str(pair["secret_key"])}


def init_vault(ctx: Context, deployer: Mapping[str, str]) -> None:
    """Write the environment's vault with generated secrets, then encrypt it in place.

    The proxy's operator password (MLflow, Grafana, Prometheus, Alertmanager) is generated too:
    it is written beside the state file (mode 0600), never printed: the operator's to keep (CI
    never needs it: it reaches MLflow and Prometheus through the SSH tunnel).
    """
    import bcrypt  # the dev lock's; imported here, the one step that hashes

    password = secrets.token_urlsafe(24)
    password_file = ctx.state.path.with_name(f"{ctx.env}-proxy-password")
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.touch(mode=0o600)
    password_file.write_text(password + "\n")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    ctx.vault.parent.mkdir(parents=True, exist_ok=True)
    ctx.vault.touch(mode=0o600)
    ctx.vault.write_text(vault_text(deployer, hashed))
    vault_args = (
        []
        if ctx.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
        else ["--vault-password-file", str(ctx.root / "playbooks" / "vault-password-from-env.sh")]
    )
    try:
        ctx.call([_tool(ctx, "ansible-vault"), "encrypt", *vault_args, ctx.vault])
    except BootstrapError:
        ctx.vault.unlink()  # never leave the secrets in clear
        raise
    print(
        f"    wrote and encrypted {_rel(ctx.vault)}; the operator password is in "
        f"{_rel(password_file)} (user: admin; keep it in your password manager)"
    )


def vault_text(deployer: Mapping[str, str], proxy_password_hash: str) -> str:
    """The vault's YAML: the deployer's key (ci-apply-ENV's), generated passwords and keys."""
    values = {
        "vault_cepage_scw_access_key": deployer["access_key"],
        "vault_cepage_scw_secret_key": deployer["secret_key"],
        "vault_cepage_postgres_password": secrets.token_hex(24),
        "vault_cepage_feedback_key": secrets.token_hex(32),
        "vault_cepage_proxy_password_hash": proxy_password_hash,
    }
    lines = ["---", "# Written by `make bootstrap ... INIT_VAULT=1` (scripts/bootstrap.py)."]
    lines += [f"{key}: {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _tool(ctx: Context, name: str) -> str:
    venv = ctx.bin / name
    return str(venv) if venv.exists() else name


# --- 2. state-bucket ---------------------------------------------------------------------------


def state_bucket(ctx: Context) -> None:
    if not backend_needs_bucket(ctx.iac, ctx.env):
        print("    the state bucket is already set in iac/envs/*.backend.hcl")
        return
    if not ctx.suffix:
        raise BootstrapError(
            "the state bucket does not exist yet: give a suffix that makes its name unique "
            "(make bootstrap ENV=dev SUFFIX=yourorg: 1-12 lowercase letters/digits)"
        )
    ctx.call([ctx.iac / "infra.sh", "bootstrap", ctx.suffix])
    done = bootstrap_output(ctx, "-raw", "state_bucket")
    bucket = done.stdout.strip()
    for path in write_backend_bucket(ctx.iac, bucket):
        print(f'    wrote bucket = "{bucket}" into {_rel(path)}')
    print("    commit iac/envs/dev.backend.hcl and iac/envs/prod.backend.hcl (CI reads them)")


def bootstrap_output(
    ctx: Context, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`terraform output ARGS` of iac/bootstrap (its local state), with the key pair its S3 calls
    read as AWS_*."""
    env = {"AWS_ACCESS_KEY_ID": ctx.environ.get("SCW_ACCESS_KEY", ""),
           "AWS_SECRET_ACCESS_KEY": ctx.environ.get("SCW_SECRET_KEY", "")}  # fmt: skip
    return ctx.call(
        [*ctx.terraform, "output", *args],
        cwd=ctx.iac / "bootstrap",
        env=env,
        capture=True,
        check=check,
    )


def backend_needs_bucket(iac: Path, env: str) -> bool:
    return PLACEHOLDER_BUCKET in (iac / "envs" / f"{env}.backend.hcl").read_text()


def write_backend_bucket(iac: Path, bucket: str) -> list[Path]:
    """Put ``bucket`` into every environment's backend file still holding the placeholder."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise BootstrapError(f"{bucket!r} is not a bucket name (terraform output state_bucket)")
    written = []
    for env in ENVIRONMENTS:
        path = iac / "envs" / f"{env}.backend.hcl"
        text = path.read_text()
        if PLACEHOLDER_BUCKET in text:
            path.write_text(text.replace(PLACEHOLDER_BUCKET, f'bucket = "{bucket}"'))
            written.append(path)
    return written


def _bucket_still_set(ctx: Context) -> bool:
    return not backend_needs_bucket(ctx.iac, ctx.env)


# --- 3. infra ----------------------------------------------------------------------------------


def infra(ctx: Context) -> None:
    plan_infra(ctx)
    ctx.call([ctx.iac / "infra.sh", "apply", ctx.env])
    ctx._outputs = None


def plan_infra(ctx: Context) -> dict[str, Any]:
    """`iac/infra.sh plan ENV`, then its saved plan read back and refused if it destroys."""
    ctx.call([ctx.iac / "infra.sh", "plan", ctx.env])
    plan = show_plan(ctx)
    refuse_destruction(plan)
    changes = [
        rc for rc in plan.get("resource_changes", []) if rc["change"]["actions"] != ["no-op"]
    ]
    print(f"    the plan creates or updates {len(changes)} resources and deletes none")
    return plan


def plan_file(iac: Path, env: str) -> Path:
    """Where iac/infra.sh saves the plan (its TF_DATA_DIR is .terraform/ENV)."""
    return iac / ".terraform" / env / f"{env}.tfplan"


def show_plan(ctx: Context) -> dict[str, Any]:
    data_dir = ctx.iac / ".terraform" / ctx.env
    env = {"TF_DATA_DIR": str(data_dir), "CHECKPOINT_DISABLE": "1"}
    done = ctx.call(
        [*ctx.terraform, "show", "-json", plan_file(ctx.iac, ctx.env)],
        cwd=ctx.iac,
        env=env,
        capture=True,
    )
    plan: dict[str, Any] = json.loads(done.stdout)
    return plan


def destructive_changes(plan: Mapping[str, Any]) -> list[str]:
    """The addresses a plan deletes or replaces (Terraform's plan JSON: actions with a delete)."""
    return [
        f"{rc['address']} ({'replace' if 'create' in rc['change']['actions'] else 'delete'})"
        for rc in plan.get("resource_changes", [])
        if "delete" in rc["change"]["actions"]
    ]


def refuse_destruction(plan: Mapping[str, Any]) -> None:
    """The bootstrap never destroys: a plan that deletes or replaces anything stops it."""
    destroyed = destructive_changes(plan)
    if destroyed:
        raise BootstrapError(
            "the plan deletes or replaces resources, which the bootstrap never does:\n    "
            + "\n    ".join(destroyed)
            + "\n  Review it (make infra-plan ENV=...) and apply it yourself if it is intended."
        )


# --- 4. registry-login -------------------------------------------------------------------------


def registry_prefix(ctx: Context) -> str:
    return str(ctx.outputs()["registry_endpoint"])


def registry_host(prefix: str) -> str:
    """rg.fr-par.scw.cloud/cepage-dev -> rg.fr-par.scw.cloud (what docker login takes)."""
    return prefix.split("/", 1)[0]


def registry_login(ctx: Context) -> None:
    """docker login (the pushes) and skopeo login (the digests): skopeo reads docker's own file,
    but not a credential helper's store (Docker Desktop keeps logins in the OS keychain)."""
    host = registry_host(registry_prefix(ctx))
    for tool in ("docker", "skopeo"):
        ctx.call(
            [tool, "login", host, "-u", "nologin", "--password-stdin"],
            stdin=ctx.environ["SCW_SECRET_KEY"],
        )


# --- 5. mlflow-up ------------------------------------------------------------------------------


def git_sha(ctx: Context) -> str:
    done = ctx.call(["git", "rev-parse", "HEAD"], capture=True)
    return done.stdout.strip()[:12]


def free_tag(ctx: Context, prefix: str, base: str, names: Sequence[str]) -> tuple[str, bool]:
    """The tag to use: the first of ``base``, ``base2``, ``base3``... under which the registry
    holds every image of ``names`` (True: reuse them as they are) or none (False: build and push).

    Tags are immutable: a tag an interrupted run left half pushed (or pushed from other sources)
    is never pushed again with new builds; the next name is taken instead.
    """
    for attempt in range(1, 100):
        tag = base if attempt == 1 else f"{base}{attempt}"
        present = [bool(remote_digest(ctx, f"{prefix}/{name}:{tag}")) for name in names]
        if all(present) or not any(present):
            return tag, all(present)
        print(f"    {prefix}:{tag} is half pushed (an interrupted run): taking the next tag")
    raise BootstrapError(f"no free tag from {base} in {prefix}")


def image_names(ctx: Context) -> list[str]:
    """The stack's images (scripts/images.sh names: compose's services with a build)."""
    return ctx.call(
        ["bash", ctx.root / "scripts" / "images.sh", "names"], capture=True
    ).stdout.split()


def compose_build(ctx: Context, prefix: str, tag: str, services: Sequence[str]) -> None:
    files = ["-f", "compose/docker-compose.yml", "-f", "compose/docker-compose.dev.yml"]
    env = {"CEPAGE_IMAGE_PREFIX": prefix, "CEPAGE_IMAGE_TAG": tag}
    ctx.call(["docker", "compose", *files, "--profile", "jobs", "build", *services], env=env)


def push_once(ctx: Context, ref: str) -> str:
    """Push ``ref`` unless the registry has it; its manifest digest. Same rule as
    scripts/images.sh: identical content is fine, other content under the tag is refused."""
    existing = remote_digest(ctx, ref)
    local = ctx.call(
        ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref], capture=True
    )
    repo_digests = json.loads(local.stdout or "[]") or []
    if existing:
        if any(d.endswith(f"@{existing}") for d in repo_digests):
            print(f"    {ref} already pushed ({existing})")
            return existing
        raise BootstrapError(
            f"{ref} exists in the registry with other content ({existing}): tags are immutable"
        )
    ctx.call(["docker", "push", ref])
    pushed = remote_digest(ctx, ref)
    if not pushed:
        raise BootstrapError(f"{ref} is not in the registry after docker push")
    return pushed


def remote_digest(ctx: Context, ref: str) -> str:
    """sha256 of the manifest the registry serves for ``ref`` ('' when it has none)."""
    tls = ctx.environ.get("CEPAGE_REGISTRY_TLS_VERIFY", "true")
    done = subprocess.run(  # nosec B603 B607  # skopeo from PATH, fixed arguments, no shell
        ["skopeo", "inspect", f"--tls-verify={tls}", "--raw", f"docker://{ref}"],
        env=ctx.environ, capture_output=True, check=False,
    )  # fmt: skip
    return f"sha256:{hashlib.sha256(done.stdout).hexdigest()}" if done.returncode == 0 else ""


def deploy_args(ctx: Context, tag: str, digests: Path | None, extra: Sequence[str] = ()) -> None:
    """`make deploy ENV=... IMAGE_TAG=... [IMAGE_DIGESTS=...]`, with extra ansible-playbook args."""
    env = {"ANSIBLE_PLAYBOOK": _tool(ctx, "ansible-playbook"), "IMAGE_TAG": tag,
           "IMAGE_DIGESTS": str(digests) if digests else ""}  # fmt: skip
    ctx.call([ctx.root / "playbooks" / "deploy.sh", "deploy", ctx.env, *extra], env=env)


def mlflow_only_vars(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Extra vars of the first deploy: the control host runs MLflow and Prometheus (and the
    stack's PostgreSQL without a managed database) and nothing else; the tag is not recorded as
    a release (it has no service image: a rollback must never land on it); prod takes it without
    the full digest set."""
    # Prometheus too: playbooks/tunnel.sh, the way to this MLflow, waits for both to answer.
    services = ["mlflow", "prometheus"] + (["postgres"] if outputs.get("database") is None else [])
    return {
        "cepage_stack_services": services,
        "cepage_stack_record_release": False,
        "cepage_stack_require_image_digests": False,
    }


def mlflow_up(ctx: Context) -> None:
    """Push the MLflow image under ``<sha>-bootstrap`` (unless the registry has it) and deploy
    MLflow alone, pinned by its digest."""
    prefix = registry_prefix(ctx)
    tag, pushed = free_tag(ctx, prefix, f"{git_sha(ctx)}-bootstrap", MLFLOW_IMAGES)
    if not pushed:
        compose_build(ctx, prefix, tag, MLFLOW_IMAGES)
    refs = {name: f"{prefix}/{name}:{tag}" for name in MLFLOW_IMAGES}
    push = remote_digest if pushed else push_once
    digests = {name: push(ctx, ref) for name, ref in refs.items()}
    extra = json.dumps({**mlflow_only_vars(ctx.outputs()), "cepage_image_digests": digests})
    deploy_args(ctx, tag, None, ["--limit", "control", "-e", extra])


# --- 6. first-model ----------------------------------------------------------------------------


def champion_version(ctx: Context) -> str | None:
    done = ctx.with_mlflow([ctx.bin / "cepage", "registry", "champion"], capture=True, check=False)
    version = (
        done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else ""
    )
    return version or None


def first_model(ctx: Context) -> None:
    version = champion_version(ctx)
    if version:
        print(f"    the registry already has a champion (version {version}): nothing to train")
        return
    ctx.with_mlflow([ctx.bin / "cepage", "train"])
    ctx.with_mlflow([ctx.bin / "cepage", "promote"])
    version = champion_version(ctx)
    if not version:
        raise BootstrapError(
            "the first model was trained but not promoted to @champion (see the gate above)"
        )
    print(f"    version {version} is @champion")


def _champion_exists(ctx: Context) -> bool:
    return champion_version(ctx) is not None


# --- 7. release --------------------------------------------------------------------------------


def release(ctx: Context) -> None:
    """Package the champion, build every image, push them under ``<sha>-m<version>-bootstrap``
    (release.yml's scheme, marked: never a tag a CI release builds and signs itself) and record
    their digests; images already pushed under that tag are reused as they are."""
    version = champion_version(ctx)
    if not version:
        raise BootstrapError("no @champion in the deployed MLflow: run FROM=first-model")
    prefix = registry_prefix(ctx)
    tag, pushed = free_tag(ctx, prefix, f"{git_sha(ctx)}-m{version}-bootstrap", image_names(ctx))
    if not pushed:
        ctx.with_mlflow([ctx.bin / "cepage", "package"])
        env = {"CEPAGE_IMAGE_PREFIX": prefix, "CEPAGE_IMAGE_TAG": tag}
        ctx.call(["make", "--no-print-directory", "docker-images"], env=env)
    push_release(ctx, prefix, tag, push=not pushed)


def push_release(ctx: Context, prefix: str, tag: str, push: bool = True) -> dict[str, str]:
    """Push every image under ``tag`` (scripts/images.sh push), write their digests where the
    deploy step reads them and remember the tag."""
    images = ctx.root / "scripts" / "images.sh"
    if push:
        ctx.call(["bash", images, "push", prefix, tag])
    done = ctx.call(["bash", images, "digests", prefix, tag], capture=True)
    digests: dict[str, str] = json.loads(done.stdout)
    ctx.digests_file.parent.mkdir(parents=True, exist_ok=True)
    ctx.digests_file.write_text(json.dumps(digests, indent=2) + "\n")
    ctx.state.remember("release_tag", tag)
    print(f"    {len(digests)} images under {prefix}:{tag}, digests in {_rel(ctx.digests_file)}")
    return digests


def _release_still_there(ctx: Context) -> bool:
    return ctx.digests_file.exists() and bool(ctx.state.value("release_tag"))


# --- 8. deploy, 9. smoke -----------------------------------------------------------------------


def deploy(ctx: Context) -> None:
    deploy_args(ctx, str(ctx.state.value("release_tag")), ctx.digests_file)


def api_url(outputs: Mapping[str, Any]) -> str:
    urls = outputs.get("urls") or {}
    url = urls.get("api") or urls.get("base")
    if not url:
        raise BootstrapError("Terraform's outputs have neither urls.api nor urls.base")
    return str(url)


def smoke(ctx: Context) -> None:
    argv: list[str | Path] = [
        "make",
        "--no-print-directory",
        "smoke",
        f"URL={api_url(ctx.outputs())}",
    ]
    if ctx.environ.get("CEPAGE_BOOTSTRAP_MLFLOW_URI"):
        ctx.call(argv)
    else:  # the tunnel also gives the smoke test the control host's Prometheus
        ctx.call([ctx.root / "playbooks" / "tunnel.sh", ctx.env, "--", *argv])


def _always(_: Context) -> bool:
    return False


STEPS = (
    Step("check", "credentials, tools, operator inputs, the encrypted vault", check, _always),
    Step(
        "state-bucket",
        "the Terraform state bucket, named in iac/envs/*.backend.hcl",
        state_bucket,
        _bucket_still_set,
    ),
    Step(
        "vault", "the Ansible vault (INIT_VAULT: written with ci-apply-ENV's key)", vault, _always
    ),
    Step("infra", "terraform plan (refused if it deletes anything), apply", infra),
    Step("registry-login", "docker login to the environment's registry", registry_login, _always),
    Step("mlflow-up", "the MLflow image pushed, MLflow deployed alone", mlflow_up),
    Step(
        "first-model",
        "train and promote a first model against the deployed MLflow",
        first_model,
        _champion_exists,
    ),
    Step(
        "release",
        "package the champion, build and push every image, their digests",
        release,
        _release_still_there,
    ),
    Step("deploy", "the whole stack, pinned by digest", deploy),
    Step("smoke", "the smoke test against the API and Prometheus", smoke, _always),
)


# --- the end: what to do next --------------------------------------------------------------------


def summary(ctx: Context, timings: Mapping[str, float]) -> str:
    outputs = ctx.outputs()
    urls = outputs.get("urls") or {}
    lines = [f"\n{ctx.env} is serving. URLs:"]
    lines += [f"  {k:<13} {v}" for k, v in urls.items() if isinstance(v, str) and v]
    lines += ["", "Time per step (this run):"]
    lines += [f"  {name:<15} {_duration(seconds)}" for name, seconds in timings.items()]
    buckets = outputs.get("buckets") or {}
    lines += [
        "",
        "Now give GitHub what CI needs (docs/ci-cd.md, 'What the repository needs'):",
        "  variables:",
        f"    SCW_DEFAULT_PROJECT_ID={ctx.environ.get('SCW_DEFAULT_PROJECT_ID', '')}",
        "    ADMIN_CIDRS, SSH_PUBLIC_KEYS (your TF_VAR_admin_cidrs, TF_VAR_ssh_public_keys)",
        f"    PRODUCTION_LOG_BUCKET={buckets.get('production_log', '')}",
        "  secrets:",
        "    SCW_PLAN_ACCESS_KEY, SCW_PLAN_SECRET_KEY (repository)",
        "    in the dev and prod environments: SCW_ACCESS_KEY, SCW_SECRET_KEY, SSH_PRIVATE_KEY,",
        "      SSH_KNOWN_HOSTS (release and retrain use dev's: they reach MLflow by SSH tunnel)",
        f"    ANSIBLE_VAULT_PASSWORD, ANSIBLE_VAULT_YML (the content of {_rel(ctx.vault)})",
        "    RETRAIN_ACCESS_KEY, RETRAIN_SECRET_KEY (dev environment), CEPAGE_API_KEY (optional)",
        "",
        "CI now takes over: a push to main releases and deploys dev (prod after approval).",
    ]
    return "\n".join(lines)


# --- teardown ----------------------------------------------------------------------------------


def force_destroys_buckets(iac: Path, env: str) -> bool:
    match = re.search(
        r"^\s*force_destroy_buckets\s*=\s*(true|false)",
        (iac / "envs" / f"{env}.tfvars").read_text(),
        re.M,
    )
    return match is None or match.group(1) == "true"


def scaleway_api(ctx: Context, method: str, path: str, **params: str) -> dict[str, Any]:
    """One call to Scaleway's API (SCW_API_URL overrides its address, as for Scaleway's tools)."""
    import requests

    base = ctx.environ.get("SCW_API_URL") or SCW_API
    response = requests.request(
        method, base.rstrip("/") + path, params=params or None, timeout=30,
        headers={"X-Auth-Token": ctx.environ["SCW_SECRET_KEY"]},
    )  # fmt: skip
    if response.status_code >= 400:
        raise BootstrapError(
            f"Scaleway API {method} {path}: {response.status_code} {response.text[:300]}"
        )
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def _pages(ctx: Context, path: str, key: str, **params: str) -> Iterator[dict[str, Any]]:
    page = 1
    while True:
        body = scaleway_api(ctx, "GET", path, page=str(page), page_size="100", **params)
        items = body.get(key, [])
        yield from items
        if not items or page * 100 >= int(body.get("total_count", 0)):
            return
        page += 1


def delete_registry_images(ctx: Context, prefix: str) -> list[str]:
    """Delete every image of the registry namespace ``prefix`` (the Scaleway registry API)."""
    host, _, namespace = prefix.partition("/")
    region = host.removeprefix("rg.").removesuffix(".scw.cloud")
    api = f"/registry/v1/regions/{region}"
    project = ctx.environ["SCW_DEFAULT_PROJECT_ID"]
    found = [
        n
        for n in _pages(ctx, f"{api}/namespaces", "namespaces", name=namespace, project_id=project)
        if n.get("name") == namespace
    ]
    deleted = []
    for ns in found:
        for image in list(_pages(ctx, f"{api}/images", "images", namespace_id=ns["id"])):
            scaleway_api(ctx, "DELETE", f"{api}/images/{image['id']}")
            deleted.append(f"{prefix}/{image['name']}")
    return deleted


def empty_buckets(ctx: Context, names: Sequence[str], endpoint: str, region: str) -> None:
    import boto3  # the dev lock's; imported here, the one step that talks S3

    s3 = boto3.resource(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=ctx.environ["SCW_ACCESS_KEY"],
        aws_secret_access_key=ctx.environ["SCW_SECRET_KEY"],
    )
    for name in names:
        print(f"    emptying {name} (every object version)")
        bucket = s3.Bucket(name)
        bucket.object_versions.delete()
        bucket.objects.all().delete()


def teardown(ctx: Context, yes: bool, empty: bool, ask: Callable[[str], str] = input) -> None:
    """Remove the environment: registry images, (prod's buckets' content with --empty-buckets),
    everything Terraform made, the bootstrap's state; then list what is left to remove by hand."""
    if (
        not yes
        and ask(f"This destroys {ctx.env} completely. Type its name to confirm: ").strip()
        != ctx.env
    ):
        raise BootstrapError("not confirmed: nothing was removed")
    missing = missing_variables(ctx.environ)
    if missing:
        raise BootstrapError(f"set {', '.join(missing)}")
    outputs = ctx.outputs()
    buckets = outputs.get("buckets") or {}
    bucket_names = [
        str(buckets[k]) for k in ("mlflow_artifacts", "backups", "production_log") if buckets.get(k)
    ]
    if not force_destroys_buckets(ctx.iac, ctx.env):
        if not empty:
            raise BootstrapError(
                f"{ctx.env}'s buckets are kept when not empty (force_destroy_buckets = false): "
                f"run again with --empty-buckets (make teardown ENV={ctx.env} EMPTY_BUCKETS=1) to "
                f"delete their content ({', '.join(bucket_names)}), or empty them yourself"
            )
        empty_buckets(
            ctx, bucket_names, str(buckets.get("endpoint", "")), str(buckets.get("region", ""))
        )
    registry = outputs.get("registry_endpoint")
    if registry:
        for ref in delete_registry_images(ctx, str(registry)):
            print(f"    deleted {ref}")
    else:
        print("    no registry_endpoint in Terraform's outputs (destroyed already?): no image")
    # Confirmed once, above: Terraform's own prompt would only ask again after the images are
    # gone, when answering no could no longer keep them.
    ctx.call([ctx.iac / "infra.sh", "destroy", ctx.env], stdin="yes\n")
    for path in (ctx.state.path, ctx.digests_file):
        path.unlink(missing_ok=True)
    print(leftovers(ctx))


def leftovers(ctx: Context) -> str:
    return "\n".join([
        f"\n{ctx.env} is gone. What this command does not remove (docs/install.md, Tear down):",
        "  - the Terraform state bucket (iac/bootstrap, prevent_destroy): it holds every",
        "    environment's state; delete every object version, then the bucket, once none is left",
        "  - the bootstrap's API keys (ci-plan, ci-apply-dev, ci-apply-prod), your own (IAM)",
        "  - GitHub's secrets and variables (docs/ci-cd.md), DNS records you made for domain_name",
        f"  - {_rel(ctx.vault)} and the local images (docker image prune), docker's registry login",
    ])  # fmt: skip


# --- command line --------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bootstrap", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="bootstrap an environment (resumable)")
    run.add_argument("env", choices=ENVIRONMENTS)
    run.add_argument("--suffix", default="", help="state bucket suffix (first run only)")
    run.add_argument(
        "--from", dest="start", choices=[s.name for s in STEPS], help="re-run from this step on"
    )
    run.add_argument(
        "--init-vault",
        action="store_true",
        help="write and encrypt the vault with generated values",
    )
    down = sub.add_parser("teardown", help="remove an environment completely")
    down.add_argument("env", choices=ENVIRONMENTS)
    down.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts)")
    down.add_argument(
        "--empty-buckets",
        action="store_true",
        help="delete the buckets' content where Terraform keeps it (prod)",
    )
    return parser.parse_args(argv)


def state_path(root: Path, env: str, environ: Mapping[str, str]) -> Path:
    """.cepage/bootstrap/ENV.json (under CEPAGE_HOME when it is set, like cepage's own stores)."""
    home = Path(environ.get("CEPAGE_HOME") or ".cepage")
    return (root / home if not home.is_absolute() else home) / "bootstrap" / f"{env}.json"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    ctx = Context(env=args.env, state=State.load(state_path(ROOT, args.env, os.environ)))
    try:
        if args.command == "teardown":
            teardown(ctx, args.yes, args.empty_buckets)
            return 0
        ctx.suffix, ctx.init_vault = args.suffix, args.init_vault
        timings = run_steps(ctx, STEPS, args.start)
        print(summary(ctx, timings))
    except BootstrapError as error:
        print(f"\nbootstrap: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbootstrap: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
