"""Secrets anywhere in the git history, found by detect-secrets (tests/unit/test_static_scan.py).

Every line ever added, in every commit of every ref (``git log -p --all``; a merge against its
first parent), plus the work tree's uncommitted lines (``git diff HEAD`` and the untracked files
git does not ignore), is scanned with every detect-secrets plugin and its default filters, the
way ``detect-secrets scan`` scans files. A secret committed then deleted is still found: it is in
a line some commit added. A shallow clone scans the history it has (its oldest commit adds the
whole tree). Nothing is verified over the network.

Prints the findings as JSON, one per (path, type, hashed secret), oldest commit first; the
secret itself is never printed, only its SHA-1 (detect-secrets' ``hashed_secret``).

Usage: python -m tests.support.secret_history [--skip PATH]... [REPO]
  --skip PATH  a path not to scan: the baseline of accepted findings (their hashes look like
               secrets), as detect-secrets skips its own baseline
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

WORK_TREE = "work tree"
# detect-secrets' default filters, without is_invalid_file: it drops paths missing from the work
# tree, which is where a deleted secret lives. Verification (network calls) stays off.
FILTERS = (
    "detect_secrets.filters.heuristic.is_non_text_file",
    "detect_secrets.filters.allowlist.is_line_allowlisted",
    "detect_secrets.filters.heuristic.is_sequential_string",
    "detect_secrets.filters.heuristic.is_potential_uuid",
    "detect_secrets.filters.heuristic.is_likely_id_string",
    "detect_secrets.filters.heuristic.is_templated_secret",
    "detect_secrets.filters.heuristic.is_prefixed_with_dollar_sign",
    "detect_secrets.filters.heuristic.is_indirect_reference",
    "detect_secrets.filters.heuristic.is_lock_file",
    "detect_secrets.filters.heuristic.is_not_alphanumeric_string",
    "detect_secrets.filters.heuristic.is_swagger_file",
)
_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_COMMIT = "\x00commit "


@dataclass(frozen=True)
class Finding:
    path: str
    type: str
    hashed_secret: str
    commit: str
    line: int


@dataclass
class Added:
    """The lines one commit added to one file: (line number in the new file, text)."""

    commit: str
    path: str
    lines: list[tuple[int, str]]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "core.quotePath=false", *args],
        capture_output=True,
        check=True,
    )
    return done.stdout.decode("utf-8", errors="replace")


def added_lines(patch: str, commit: str = WORK_TREE) -> Iterator[Added]:
    """The added lines of ``git log -p -U0`` (or ``git diff -U0``) output, file by file.

    Hunk headers give how many lines follow, so an added line that looks like a header
    (``+++ x``) is read as content.
    """
    current: Added | None = None
    old = new = 0
    number = 0
    for line in patch.split("\n"):
        if old or new:  # inside a hunk: its lines, however they look
            if line.startswith("+") and new:
                new -= 1
                if current is not None:
                    current.lines.append((number, line[1:]))
                number += 1
                continue
            if line.startswith("-") and old:
                old -= 1
                continue
            if line.startswith(" ") and old and new:
                old, new, number = old - 1, new - 1, number + 1
                continue
            if line.startswith("\\"):  # "\ No newline at end of file"
                continue
            old = new = 0  # a hunk cut short: read on as headers
        if line.startswith(_COMMIT):
            commit = line[len(_COMMIT) :].strip()
        elif line.startswith("diff --git "):
            if current is not None and current.lines:
                yield current
            current = None
        elif line.startswith("+++ "):
            target = line[4:]
            path = target[2:] if target.startswith("b/") else None  # None: /dev/null (deleted)
            current = Added(commit, path, []) if path else None
        elif match := _HUNK.match(line):
            old = int(match[1] if match[1] is not None else 1)
            number = int(match[2])
            new = int(match[3] if match[3] is not None else 1)
    if current is not None and current.lines:
        yield current


def untracked(repo: Path) -> Iterator[Added]:
    for name in git(repo, "ls-files", "-z", "--others", "--exclude-standard").split("\0"):
        path = repo / name
        if not name or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary or unreadable: detect-secrets skips those too
        yield Added(WORK_TREE, name, list(enumerate(text.splitlines(), start=1)))


def everything(repo: Path) -> Iterator[Added]:
    """The added lines of the whole history (oldest commit first), then of the work tree."""
    log = git(
        repo,
        "log",
        "-p",
        "-U0",
        "--all",
        "--reverse",
        "--no-renames",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--diff-merges=first-parent",
        "--format=%x00commit %H",
    )
    yield from added_lines(log)
    if git(repo, "rev-parse", "--is-inside-work-tree").strip() == "true":
        yield from added_lines(git(repo, "diff", "HEAD", "-U0", "--no-renames", "--no-color"))
        yield from untracked(repo)


def scan(chunks: Iterator[Added], skip: frozenset[str] = frozenset()) -> list[Finding]:
    """One finding per (path, type, hashed secret): where it was first added."""
    # Imported here: the diff reading above works (and is tested) without detect-secrets.
    # _process_line_based_plugins is what its own scan_file and scan_diff call on each file's
    # lines; detect-secrets is pinned (pyproject.toml) for it.
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import transient_settings

    found: dict[tuple[str, str, str], Finding] = {}
    classes: list[type] = list(get_mapping_from_secret_type_to_class().values())
    plugins = [{"name": cls.__name__} for cls in classes]
    config = {"plugins_used": plugins, "filters_used": [{"path": path} for path in FILTERS]}
    with transient_settings(config):
        for chunk in chunks:
            if chunk.path in skip:
                continue
            # Numbered 1..n so the plugins' context (the line before, for an allowlist comment)
            # is the lines around it; the real line number is kept beside.
            numbers = [number for number, _ in chunk.lines]
            texts = list(enumerate((text for _, text in chunk.lines), start=1))
            for secret in _process_line_based_plugins(texts, filename=chunk.path):
                key = (chunk.path, secret.type, secret.secret_hash)
                found.setdefault(
                    key,
                    Finding(
                        chunk.path,
                        secret.type,
                        secret.secret_hash,
                        chunk.commit,
                        numbers[secret.line_number - 1],
                    ),
                )
    return list(found.values())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.secret_history")
    parser.add_argument("--skip", action="append", default=[], metavar="PATH")
    parser.add_argument("repo", nargs="?", default=".", type=Path)
    args = parser.parse_args(argv)
    findings = scan(everything(args.repo.resolve()), frozenset(args.skip))
    json.dump([asdict(f) for f in findings], sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
