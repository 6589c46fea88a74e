"""Static scan, part of `make test`: bandit on the project's Python and detect-secrets over the
whole git history, each against its committed baseline in tests/unit/baselines/.

A finding the baseline does not accept fails, listed with what to do. The tools come with the
venv's dev extra (`make setup`): missing, they skip on a laptop and fail with CI=true.

bandit scans every tracked Python file outside tests/: the tests drive throwaway local services
with asserts, subprocesses and made-up keys on every page, which would bury the findings that
matter (the service, the CLI, the stack); secrets in the tests are still covered by the history
scan, which reads every file. Both scans take a few seconds (the history one grows with it).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import BIN, ROOT, require, require_binary
from tests.support.secret_history import WORK_TREE, added_lines

BASELINES = ROOT / "tests" / "unit" / "baselines"
BANDIT_BASELINE = BASELINES / "bandit.json"
SECRETS_BASELINE = BASELINES / "secrets.json"

Entry = dict[str, Any]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def compare(
    found: Iterable[Entry], accepted: Iterable[Entry], key: Callable[[Entry], tuple[str, ...]]
) -> tuple[list[Entry], list[Entry]]:
    """(found but not accepted, accepted but not found), counting repeats of one key."""
    found, accepted = list(found), list(accepted)
    extra = Counter(map(key, found)) - Counter(map(key, accepted))
    gone = Counter(map(key, accepted)) - Counter(map(key, found))

    def pick(entries: list[Entry], counts: Counter[tuple[str, ...]]) -> list[Entry]:
        picked = []
        for entry in entries:
            if counts[key(entry)] > 0:
                counts[key(entry)] -= 1
                picked.append(entry)
        return picked

    return pick(found, extra), pick(accepted, gone)


# --- bandit ---


def bandit_key(entry: Entry) -> tuple[str, ...]:
    return (entry["path"], entry["test_id"], entry["code"])


def in_checkout(*args: str) -> str:
    """``git ARGS`` in the checkout; skips (fails with CI=true) outside a git checkout."""
    git = require_binary("git")
    done = subprocess.run([git, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    require(done.returncode == 0, f"not a git checkout: {done.stderr.strip()}")
    return done.stdout


def project_python() -> list[str]:
    """Every Python file git tracks (or would: untracked, not ignored) outside tests/."""
    listed = in_checkout(
        "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.py"
    )
    names = {n for n in listed.split("\0") if n}
    return sorted(n for n in names if not n.startswith("tests/") and (ROOT / n).is_file())


def bandit(files: list[str], skip: Iterable[str]) -> list[Entry]:
    """bandit's findings on ``files`` (paths relative to the checkout, or absolute)."""
    exe = BIN / "bandit"
    require(exe.exists(), "bandit is not installed in .venv (make setup installs the dev extra)")
    argv = [str(exe), "-q", "-f", "json", "-s", ",".join(skip), *files]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), f"bandit failed ({done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    assert not report["errors"], f"bandit could not read some files: {report['errors']}"
    findings = []
    for result in report["results"]:
        path = result["filename"].removeprefix("./")
        lines = (ROOT / path).read_text().splitlines()
        findings.append(
            {
                "path": path,
                "test_id": result["test_id"],
                "code": lines[result["line_number"] - 1].strip(),
                "line": result["line_number"],
                "severity": result["issue_severity"],
                "text": result["issue_text"],
                "more_info": result["more_info"],
            }
        )
    return findings


def bandit_report(new: list[Entry], stale: list[Entry]) -> str:
    lines = []
    if new:
        lines.append(
            f"bandit: {len(new)} finding(s) not in {BANDIT_BASELINE.relative_to(ROOT)}. Fix each, "
            "or mark the line `# nosec BXXX` with the reason beside it, or accept it in the "
            "baseline with a `why`:"
        )
        for f in new:
            lines.append(
                f"  {f['path']}:{f['line']}: {f['test_id']} ({f['severity']}) {f['text']} "
                f"{f['more_info']}"
            )
        entries = [{**{k: f[k] for k in ("path", "test_id", "code")}, "why": ""} for f in new]
        lines.append(json.dumps(entries, indent=2))
    if stale:
        lines.append("bandit: accepted findings no longer found (remove them from the baseline):")
        lines += [f"  {s['path']}: {s['test_id']} `{s['code']}`" for s in stale]
    return "\n".join(lines)


def test_bandit_finds_nothing_new_in_the_project() -> None:
    baseline = load(BANDIT_BASELINE)
    found = bandit(project_python(), baseline["skip"])
    new, stale = compare(found, baseline["accepted"], bandit_key)
    assert not new and not stale, bandit_report(new, stale)


def test_bandit_flags_a_finding_the_baseline_does_not_accept(tmp_path: Path) -> None:
    risky = tmp_path / "risky.py"
    risky.write_text("import subprocess\n\n\ndef run(cmd: str) -> int:\n")
    with risky.open("a") as out:
        out.write("    return subprocess.call(cmd, shell=True)\n")
    baseline = load(BANDIT_BASELINE)
    found = bandit([str(risky)], baseline["skip"])
    new, _ = compare(found, baseline["accepted"], bandit_key)
    assert [(f["test_id"], f["code"]) for f in new] == [
        ("B602", "return subprocess.call(cmd, shell=True)")
    ]
    assert "B602" in bandit_report(new, [])


# --- detect-secrets over the history ---


def secret_key(entry: Entry) -> tuple[str, ...]:
    return (entry["path"], entry["type"], entry["hashed_secret"])


def secrets_in_history(repo: Path, skip: Iterable[str] = ()) -> list[Entry]:
    exe = BIN / "detect-secrets"
    require(
        exe.exists(), "detect-secrets is not installed in .venv (make setup installs the dev extra)"
    )
    require_binary("git")
    argv = [str(BIN / "python"), "-m", "tests.support.secret_history"]
    argv += [arg for path in skip for arg in ("--skip", path)]
    done = subprocess.run(
        [*argv, str(repo)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"the history scan failed:\n{done.stderr[-3000:]}"
    findings: list[Entry] = json.loads(done.stdout)
    return findings


@pytest.mark.slow
def test_no_new_secret_in_the_git_history() -> None:
    """Every commit of every ref, and the uncommitted work: nothing the baseline does not accept.

    Entries of the baseline that are not found are fine: a shallow clone (GitHub's checkout)
    has only part of the history.
    """
    in_checkout("rev-parse", "HEAD")
    skip = str(SECRETS_BASELINE.relative_to(ROOT))
    new, _ = compare(
        secrets_in_history(ROOT, [skip]), load(SECRETS_BASELINE)["accepted"], secret_key
    )
    report = [
        f"  {f['path']}:{f['line']} ({f['commit']}): {f['type']}, hashed {f['hashed_secret']}"
        for f in new
    ]
    entries = [
        {**{k: f[k] for k in ("path", "type", "hashed_secret")}, "first_added": f["commit"][:12]}
        | {"why": ""}
        for f in new
    ]
    assert not new, (
        f"detect-secrets: {len(new)} finding(s) in the git history not in {skip}. A real secret "
        "is compromised once committed, even if a later commit removes it: revoke it, rewrite "
        "the history if it was not pushed, then accept the dead value with the date it was "
        "revoked. Not a secret: add `# pragma: allowlist secret` on its line, or accept it in "
        "the baseline with a `why`:\n" + "\n".join(report) + "\n" + json.dumps(entries, indent=2)
    )


def git_in(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=cepage tests", "-c", "user.email=tests@example.org"]
    done = subprocess.run(
        ["git", "-C", str(repo), *identity, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_secret_removed_from_the_tree_is_still_found(tmp_path: Path) -> None:
    require_binary("git")
    repo = tmp_path / "repo"
    repo.mkdir()
    git_in(repo, "init", "-q")
    # Made up at run time, so that this file holds no secret for the history scan to find.
    aws_key = "AKIA" + "ZQ4" * 5 + "Q"
    (repo / "settings.py").write_text(f'region = "fr-par"\naws_key = "{aws_key}"\n')
    git_in(repo, "add", ".")
    git_in(repo, "commit", "-q", "-m", "oops")
    leaked = git_in(repo, "rev-parse", "HEAD")
    (repo / "settings.py").write_text('region = "fr-par"\n')
    git_in(repo, "commit", "-q", "-am", "remove the key")
    (repo / "notes.txt").write_text("-----BEGIN RSA " + "PRIVATE KEY-----\n")  # not committed

    found = {(f["path"], f["type"]): f for f in secrets_in_history(repo)}

    assert set(found) == {("settings.py", "AWS Access Key"), ("notes.txt", "Private Key")}
    assert (
        found["settings.py", "AWS Access Key"]["commit"],
        found["settings.py", "AWS Access Key"]["line"],
    ) == (leaked, 2)
    assert found["notes.txt", "Private Key"]["commit"] == WORK_TREE


def test_added_lines_reads_hunks_by_their_counts() -> None:
    patch = "\n".join(
        [
            "\x00commit abc",
            "diff --git a/x.txt b/x.txt",
            "--- a/x.txt",
            "+++ b/x.txt",
            "@@ -1 +1,2 @@",
            "-old",
            "+first",
            "+++ b/looks-like-a-header.txt",  # the hunk's last line: still content
            "@@ -9,0 +10 @@",
            "+tenth",
            "\\ No newline at end of file",
            "diff --git a/gone.txt b/gone.txt",
            "--- a/gone.txt",
            "+++ /dev/null",
            "@@ -1 +0,0 @@",
            "-removed",
        ]
    )
    [chunk] = added_lines(patch)
    assert (chunk.commit, chunk.path) == ("abc", "x.txt")
    assert chunk.lines == [(1, "first"), (2, "++ b/looks-like-a-header.txt"), (10, "tenth")]


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (BANDIT_BASELINE, ("path", "test_id", "code")),
        (SECRETS_BASELINE, ("path", "type", "hashed_secret")),
    ],
)
def test_every_accepted_finding_says_why(path: Path, key: tuple[str, ...]) -> None:
    accepted = load(path)["accepted"]
    assert [e for e in accepted if not str(e.get("why", "")).strip()] == []
    keys = [tuple(e[k] for k in key) for e in accepted]
    assert len(keys) == len(set(keys)), "an accepted finding is listed twice"
