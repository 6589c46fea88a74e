"""Every repository path that a page, a comment or a config file cites exists.

A comment naming a file that moved (`targets.json.j2` pointing at an old folder, `variables.tf`
citing a design file that is not in the repository) sends a reader nowhere. The shell blocks of the
docs are checked more closely by test_doc_commands.py; this reads everything else as text.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.procs import ROOT

pytestmark = pytest.mark.integration

# Where paths are cited in prose and comments (Python is left to its imports and the type checker:
# its docstrings say "train/test split" and the like).
SCANNED = re.compile(
    r"^(README\.md|Makefile|docs/.*|iac/.*|playbooks/.*|compose/.*|monitoring/.*|scripts/.*"
    r"|\.github/.*|\.ci/.*)$"
)
# A placeholder segment (ENV, NAME, ENV_NAME) or a variable: the reader fills it in.
PLACEHOLDER = re.compile(r"(^|/)[A-Z][A-Z_]*(/|\.|$)|[$<{]")
MARKDOWN = re.compile(r"(?<![\w./-])([A-Za-z0-9_-]+\.md)\b")


@functools.cache
def tracked() -> tuple[str, ...]:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return tuple(f for f in files if (ROOT / f).is_file())


@functools.cache
def path_token() -> re.Pattern[str]:
    folders = sorted({f.split("/", 1)[0] for f in tracked() if "/" in f})
    starts = "|".join(re.escape(f + "/") for f in folders)
    return re.compile(rf"(?<![\w./-])((?:{starts})[\w./*-]*[\w*])")


def ignored(path: str) -> bool:
    """A gitignored path (compose/.env, iac/.terraform, terraform.tfstate*): the user's or a
    tool's to create."""
    for candidate in (path, path + "/", path.replace("*", ""), path.replace("*", ".x")):
        done = subprocess.run(["git", "check-ignore", "-q", candidate], cwd=ROOT, check=False)
        if done.returncode == 0:
            return True
    return False


def exists(path: str, beside: Path) -> bool:
    """From the root, or relative to the citing file's folder or one above it (run from there)."""
    for base in (ROOT, beside, *[parent for parent in beside.parents if ROOT in parent.parents]):
        if "*" in path and list(base.glob(path)):
            return True
        if (base / path).exists():
            return True
    return ignored(path)


def cited_paths(relative: str) -> list[str]:
    """What ``relative`` cites that is not there, as ``file:line: path``."""
    file = ROOT / relative
    try:
        text = file.read_text()
    except UnicodeDecodeError:
        return []
    missing: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        for token in path_token().findall(line):
            if not PLACEHOLDER.search(token) and not exists(token, file.parent):
                missing.append(f"{relative}:{number}: {token}")
        for page in MARKDOWN.findall(line):
            if PLACEHOLDER.search(page):
                continue
            if not any((base / page).exists() for base in (ROOT, ROOT / "docs", file.parent)):
                missing.append(f"{relative}:{number}: {page}")
    return missing


def test_every_cited_path_exists() -> None:
    files = [f for f in tracked() if SCANNED.match(f) and not f.endswith(".py")]
    assert len(files) > 50, "the scan found almost nothing to read"
    missing = [problem for f in files for problem in cited_paths(f)]
    assert not missing, "paths cited but not in the repository:\n" + "\n".join(missing)


def test_the_check_sees_a_stale_citation(tmp_path: Path) -> None:
    assert exists("monitoring/prometheus/targets/README.md", tmp_path)
    assert not exists("monitoring/targets/README.md", tmp_path)
    assert exists("iac/.terraform", tmp_path)  # gitignored: a tool creates it
    assert exists("iac/bootstrap/terraform.tfstate*", tmp_path)
    assert PLACEHOLDER.search("playbooks/inventories/ENV/vault.example.yml")
    assert not PLACEHOLDER.search("playbooks/inventories/dev/vault.example.yml")
