"""The rules every GitHub Actions workflow of the repository follows, as functions.

Each check takes a parsed workflow (or action) and returns its problems as one-line strings: an
empty list means it passes. The tests run them on the real files and on deliberately broken
copies, so that each rule is shown to catch what it is meant to catch.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.procs import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"
EXPECTED = ("ci", "release", "deploy", "retrain", "access-sweeper")
# The jobs that may hold a write permission, and which ones. Nothing else writes.
ALLOWED_WRITES: dict[tuple[str, str], set[str]] = {
    ("ci", "plan-comment"): {"pull-requests"},
    # The OIDC token cosign signs the released images with (keyless): the release's image job,
    # and the retrain job that calls the release (a called workflow gets no more than its caller).
    ("release", "images"): {"id-token"},
    ("retrain", "release"): {"id-token"},
}
MAX_TIMEOUT_MINUTES = 90  # CI's own budget (.ci/run)

SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_PIN = re.compile(r"^[\w.-]+/[\w./-]+@v?\d+\.\d+\.\d+$")
VERSION_COMMENT = re.compile(r"^v?\d+\.\d+\.\d+$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*['\"]?([^'\"\s#]+)['\"]?\s*(?:#\s*(\S+))?")
CREDENTIAL_NAME = re.compile(
    r"(?i)(password|secret|token|access_key|api_key|private_key|known_hosts)"
)
SECRET_VALUE = re.compile(r"^\$\{\{\s*secrets\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}$")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
# Shapes of real credentials that must never be written in a workflow.
PLAINTEXT = {
    "Scaleway access key": re.compile(r"\bSCW[A-Z0-9]{17}\b"),
    "UUID (Scaleway secret key format)": re.compile(
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I
    ),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),
}
# `make [options] target... [VAR=value...]` at a command position in a shell script.
MAKE_CALL = re.compile(
    r"(?:^\s*|[;&|(]\s*|\b(?:then|do|else)\s+)make((?:[ \t]+[^\s;&|)#]+)*)", re.M
)
REDIRECTION = re.compile(r"^\d*[<>]")
# The patterns of a cache key's `hashFiles('a', 'b/*.sh')`, and the CI scripts a `run:` calls.
HASH_FILES = re.compile(r"hashFiles\(([^)]*)\)")
QUOTED = re.compile(r"'([^']+)'")
CI_SCRIPT = re.compile(r"(?<![\w./-])((?:\.ci|scripts|tests)/[\w./-]*\w)")


@dataclass
class Workflow:
    """A workflow (or composite action) file: its name, path, raw text and parsed YAML."""

    name: str
    path: Path
    text: str
    data: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Workflow:
        return cls.parse(path.stem if path.parent == WORKFLOWS else path.parent.name, path,
                         path.read_text())  # fmt: skip

    @classmethod
    def parse(cls, name: str, path: Path, text: str) -> Workflow:
        data = yaml.safe_load(text)
        assert isinstance(data, dict), f"{path}: not a YAML mapping"
        return cls(name, path, text, data)

    @property
    def triggers(self) -> dict[str, Any]:
        # YAML 1.1 reads the key `on` as the boolean true.
        raw: dict[Any, Any] = self.data
        on = raw.get("on", raw.get(True))
        if isinstance(on, str):
            return {on: None}
        if isinstance(on, list):
            return dict.fromkeys(on)
        return dict(on or {})

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        return dict(self.data.get("jobs") or {})

    def steps(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(job id, step) of every step; a composite action's steps under the job id ``action``."""
        for job_id, job in self.jobs.items():
            for step in job.get("steps") or []:
                yield job_id, step
        for step in (self.data.get("runs") or {}).get("steps") or []:
            yield "action", step


def workflows() -> list[Workflow]:
    return [Workflow.load(p) for p in sorted(WORKFLOWS.glob("*.y*ml"))]


def actions() -> list[Workflow]:
    return [Workflow.load(p) for p in sorted(ACTIONS.glob("*/action.y*ml"))]


def _is_write(level: Any) -> bool:
    return level in ("write", "write-all")


def _write_scopes(permissions: Any) -> set[str]:
    if isinstance(permissions, str):
        return {"*"} if _is_write(permissions) else set()
    return {scope for scope, level in (permissions or {}).items() if _is_write(level)}


def check_permissions(wf: Workflow) -> list[str]:
    """Top-level `permissions` present and read-only; writes only where ALLOWED_WRITES says."""
    problems = []
    if "permissions" not in wf.data:
        problems.append(f"{wf.name}: no top-level `permissions` (the default token may write)")
    elif scopes := _write_scopes(wf.data["permissions"]):
        problems.append(f"{wf.name}: top-level permissions write {sorted(scopes)}: read-only only")
    for job_id, job in wf.jobs.items():
        extra = _write_scopes(job.get("permissions")) - ALLOWED_WRITES.get((wf.name, job_id), set())
        if extra:
            problems.append(f"{wf.name}.{job_id}: writes {sorted(extra)} without being allowed to")
    return problems


def check_concurrency(wf: Workflow) -> list[str]:
    concurrency = wf.data.get("concurrency")
    group = concurrency.get("group") if isinstance(concurrency, dict) else concurrency
    return [] if group else [f"{wf.name}: no top-level `concurrency` group"]


def check_timeouts(wf: Workflow) -> list[str]:
    """Every job that runs steps has a timeout within CI's budget (jobs calling a reusable
    workflow cannot have one: the called workflow's jobs do)."""
    problems = []
    for job_id, job in wf.jobs.items():
        if "uses" in job:
            continue
        timeout = job.get("timeout-minutes")
        if not isinstance(timeout, int) or not 0 < timeout <= MAX_TIMEOUT_MINUTES:
            problems.append(f"{wf.name}.{job_id}: timeout-minutes is {timeout!r}, want 1..90")
    return problems


def check_pins(wf: Workflow) -> list[str]:
    """Every `uses:` is local, pinned by full commit SHA with a `# vX.Y.Z` comment, or pinned to
    an exact version tag."""
    problems = []
    for number, line in enumerate(wf.text.splitlines(), 1):
        match = USES_LINE.match(line)
        if not match:
            continue
        ref, comment = match.group(1), match.group(2)
        where = f"{wf.name}:{number}: {ref}"
        if ref.startswith("./") or (ref.startswith("docker://") and "@sha256:" in ref):
            continue
        if SHA_PIN.match(ref):
            if not (comment and VERSION_COMMENT.match(comment)):
                problems.append(f"{where} is pinned by SHA without a `# vX.Y.Z` comment")
        elif not VERSION_PIN.match(ref):
            problems.append(f"{where} is not pinned (full commit SHA or exact vX.Y.Z)")
    return problems


def makefile_targets(root: Path = ROOT) -> set[str]:
    """Every target make knows in the Makefile (from `make -pRrq`: its parsed database)."""
    done = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile", ":"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    targets = set()
    for line in done.stdout.splitlines():
        match = re.match(r"^([A-Za-z0-9_][A-Za-z0-9_.%/-]*):(?!=)", line)
        if match and "%" not in match.group(1):
            targets.add(match.group(1))
    assert targets, f"no target parsed from `make -p`:\n{done.stderr[-2000:]}"
    return targets


def make_calls(script: str) -> list[list[str]]:
    """The targets of every `make ...` in a shell script (options and VAR=value left out)."""
    calls = []
    script = EXPRESSION.sub("EXPR", script)
    for match in MAKE_CALL.finditer(script):
        try:
            words = shlex.split(match.group(1), comments=True)
        except ValueError:
            words = match.group(1).split()
        targets, skip = [], False
        for word in words:
            if REDIRECTION.match(word):
                break
            if skip:
                skip = False
            elif word in ("-C", "-f", "-j", "-o", "-W"):
                skip = True
            elif not word.startswith("-") and "=" not in word:
                targets.append(word)
        calls.append(targets)
    return calls


def check_make_targets(wf: Workflow, targets: set[str]) -> list[str]:
    problems = []
    for job_id, step in wf.steps():
        for call in make_calls(str(step.get("run") or "")):
            if not call:
                problems.append(f"{wf.name}.{job_id}: bare `make` (the default goal is help)")
            problems += [
                f"{wf.name}.{job_id}: `make {target}` is not a Makefile target"
                for target in call
                if target not in targets
            ]
    return problems


def ci_run_command(root: Path = ROOT) -> str:
    """What .ci/run finally runs (its last command line)."""
    lines = [
        line.strip()
        for line in (root / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    return lines[-1]


def check_ci_runs_ci_script(wf: Workflow) -> list[str]:
    """The `ci` workflow's test job runs `bash .ci/run` itself, with CI=true, so the suite in
    GitHub Actions is exactly the one of .ci/run (which installs its tools, then `make test`)."""
    for job_id, job in wf.jobs.items():
        runs = [str(step.get("run", "")).strip() for step in job.get("steps") or []]
        if "bash .ci/run" in runs:
            env = {**(wf.data.get("env") or {}), **(job.get("env") or {})}
            if str(env.get("CI", "")).lower() != "true":
                return [f"{wf.name}.{job_id}: runs .ci/run without CI=true (tests could skip)"]
            return []
    return [f"{wf.name}: no job runs `bash .ci/run` (the CI test command)"]


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")
    else:
        yield path, node


def check_secrets(wf: Workflow) -> list[str]:
    """Credentials come only from `${{ secrets.NAME }}`, given to steps through `env:`/`with:`:
    a credential-named env var or input holds exactly that expression, no `run:` script or `if:`
    expands a secret itself, and nothing looks like a real credential."""
    problems = []
    for path, value in _walk(wf.data, wf.name):
        key = path.rsplit(".", 1)[-1]
        text = "" if value is None else str(value)
        in_mapping = re.search(r"\.(env|with|secrets)\.[^.\[]+$", path) is not None
        if in_mapping and CREDENTIAL_NAME.search(key) and not SECRET_VALUE.match(text.strip()):
            problems.append(f"{path}: a credential not taken from `${{{{ secrets.* }}}}`")
        if key in ("run", "if", "script") and "secrets." in text:
            problems.append(f"{path}: expands a secret inline (pass it through `env:`)")
        problems += [
            f"{path}: looks like a plaintext {kind}"
            for kind, pattern in PLAINTEXT.items()
            if pattern.search(text)
        ]
    return problems


def check_repo_paths(wf: Workflow, root: Path = ROOT) -> list[str]:
    """The repository files a workflow relies on exist: every pattern of a cache key's
    `hashFiles(...)` matches a file (else the key hashes nothing and a stale cache lives on), and
    every CI script (under .ci/, scripts/, tests/) a `run:` step calls is there."""
    problems = []
    for call in HASH_FILES.findall(wf.text):
        for pattern in QUOTED.findall(call):
            if not any(path.is_file() for path in root.glob(pattern)):
                problems.append(f"{wf.name}: hashFiles('{pattern}') matches no file")
    for job_id, step in wf.steps():
        for path in CI_SCRIPT.findall(EXPRESSION.sub("EXPR", str(step.get("run") or ""))):
            if not (root / path).exists():
                problems.append(f"{wf.name}.{job_id}: runs {path}, which does not exist")
    return problems


# Reaching the hosts (docs/ci-cd.md#how-the-runner-reaches-the-hosts): SSH (Ansible) and MLflow or
# Prometheus through the SSH tunnel. Each needs the runner's address let in on the bastion first.
HOST_USE = re.compile(r"playbooks/tunnel\.sh|\bmake (?:[^\n]* )?(?:deploy|rollback|restore)\b")
OPEN_ACCESS = "scripts.ci_access open"
CLOSE_ACCESS = "scripts.ci_access close"
CEPAGE_CALL = re.compile(r"(?<![\w/.-])(?:\S*/)?\.venv/bin/cepage\b")
TUNNELLED = re.compile(r"playbooks/tunnel\.sh \S+ -- $")


def check_runner_access(wf: Workflow) -> list[str]:
    """A job that reaches the hosts opens access for its runner before the first use, and closes it
    after the last in a step that runs whatever happened (`always()`); every `cepage` command of
    such a job talks to MLflow through the tunnel; no job takes an MLflow server from a variable
    (the admin sites refuse runners)."""
    problems = []
    for job_id, job in wf.jobs.items():
        steps = job.get("steps") or []
        runs = [EXPRESSION.sub("EXPR", str(step.get("run") or "")) for step in steps]
        uses = [i for i, run in enumerate(runs) if HOST_USE.search(run)]
        opens = [i for i, run in enumerate(runs) if OPEN_ACCESS in run]
        closes = [i for i, run in enumerate(runs) if CLOSE_ACCESS in run]
        where = f"{wf.name}.{job_id}"
        if re.search(r"MLFLOW_TRACKING_URI:\s*'?\$\{\{\s*vars\.", yaml.safe_dump(job)):
            problems.append(f"{where}: MLflow from a variable (use playbooks/tunnel.sh)")
        if not uses and not opens:
            continue
        if not opens:
            problems.append(f"{where}: reaches the hosts without opening access first")
            continue
        if uses and uses[0] < opens[0]:
            problems.append(f"{where}: step {uses[0]} reaches the hosts before access is opened")
        after = [i for i in closes if i > max(uses + opens)]
        if not after:
            problems.append(f"{where}: access is not closed after its last use")
        for i in after:
            condition = str(steps[i].get("if", ""))
            if "always()" not in condition:
                problems.append(f"{where}: the close step runs only if {condition or 'success()'}"
                                ", not always()")  # fmt: skip
        for i, run in enumerate(runs):
            for match in CEPAGE_CALL.finditer(run):
                if not TUNNELLED.search(run[: match.start()]):
                    problems.append(f"{where}: step {i} runs cepage outside playbooks/tunnel.sh")
    return problems


ALL_CHECKS = (
    check_permissions,
    check_concurrency,
    check_timeouts,
    check_pins,
    check_secrets,
    check_repo_paths,
    check_runner_access,
)
