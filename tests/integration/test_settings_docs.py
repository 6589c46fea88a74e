"""Every environment variable cepage's code reads is documented once, in docs/cli.md's settings
table; every ``CEPAGE_*`` variable the docs name is used somewhere outside the docs.

"Read" is found in the code itself, not in a list kept beside it: the ``env.text/integer/number/
port/secret/optional_text("NAME", ...)`` calls of the settings modules and ``contracts/`` (a
``secret`` reads ``NAME`` and ``NAME_FILE``), and the ``os.environ``/``os.getenv`` reads of a
``CEPAGE_*`` name anywhere in the deployables. "Documented" is a row of a settings table: a
Markdown table whose header starts with ``variable`` and has a ``default`` column (the tables of
GitHub secrets or alert receivers, which give no defaults, are other things).
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.markdown import code_spans, tables
from tests.support.procs import ROOT

pytestmark = pytest.mark.integration

SETTINGS_MODULES = ("bento/settings.py", "train/settings.py", "ui/settings.py")
DEPLOYABLES = ("bento", "train", "modelfile", "cli", "stack", "ui", "contracts")
READERS = frozenset({"text", "integer", "number", "port", "secret", "optional_text"})
HOME = "docs/cli.md"
DOCS = ("README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md"))))
NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")
CEPAGE_NAME = re.compile(r"\bCEPAGE_[A-Z0-9_]*[A-Z0-9]\b")


def env_reads(path: Path) -> dict[str, int]:
    """Variable -> line of its first read in ``path``: any name read through ``contracts.env``,
    a ``CEPAGE_*`` name read through ``os.environ`` or ``os.getenv``."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, (ast.Call, ast.Subscript)):
            continue
        names: list[str] = []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            func, first = node.func, node.args[0]
            literal = first.value if isinstance(first, ast.Constant) else None
            if isinstance(func.value, ast.Name) and func.value.id == "env" and func.attr in READERS:
                assert isinstance(literal, str), (
                    f"{path}:{node.lineno}: env.{func.attr} with a computed name cannot be checked"
                )
                names = [literal] + ([f"{literal}_FILE"] if func.attr == "secret" else [])
            elif (func.attr == "get" and _is_os_environ(func.value)) or (
                func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os"
            ):
                names = (
                    [literal] if isinstance(literal, str) and literal.startswith("CEPAGE_") else []
                )
        elif (
            isinstance(node, ast.Subscript)  # os.environ["NAME"] read, not assigned
            and isinstance(node.ctx, ast.Load)
            and _is_os_environ(node.value)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
            and node.slice.value.startswith("CEPAGE_")
        ):
            names = [node.slice.value]
        for name in names:
            found.setdefault(name, node.lineno)
    return found


def _is_os_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def variables_read() -> dict[str, list[str]]:
    """Variable -> where it is read (``path:line``)."""
    files = {ROOT / m for m in SETTINGS_MODULES} | set((ROOT / "contracts").glob("*.py"))
    for package in DEPLOYABLES:
        files |= set((ROOT / package).rglob("*.py"))
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(files):
        for name, line in env_reads(path).items():
            where[name].append(f"{path.relative_to(ROOT)}:{line}")
    return dict(where)


def settings_rows(docs: dict[str, str]) -> dict[str, list[str]]:
    """Variable -> each ``doc:line`` where a settings table has a row for it."""
    rows: dict[str, list[str]] = defaultdict(list)
    for doc, text in docs.items():
        for table in tables(text):
            if not table.header or table.header[0] != "variable" or "default" not in table.header:
                continue
            for offset, row in enumerate(table.rows):
                for name in code_spans(row[0]):
                    if NAME.match(name):
                        rows[name].append(f"{doc}:{table.line + 2 + offset}")
    return dict(rows)


def documentation_problems(read: dict[str, list[str]], docs: dict[str, str]) -> list[str]:
    rows = settings_rows(docs)
    problems: list[str] = []
    for name in sorted(read):
        places = rows.get(name, [])
        if not places:
            problems.append(f"{name} (read at {read[name][0]}) has no row in {HOME}'s settings")
        elif len(places) > 1:
            problems.append(f"{name} has {len(places)} settings rows, {places}: keep {HOME}'s")
        elif not places[0].startswith(f"{HOME}:"):
            problems.append(f"{name} is documented in {places[0]}, not in {HOME}'s table")
    return problems


def read_docs() -> dict[str, str]:
    return {doc: (ROOT / doc).read_text() for doc in DOCS}


def test_the_finder_sees_every_kind_of_read() -> None:
    read = variables_read()
    # One of each: env.port, env.secret (and its _FILE), env.optional_text, env.integer in the
    # service, env.number in the UI, a tool's variable, an os.environ read outside the settings.
    for name in (
        "CEPAGE_API_PORT",
        "CEPAGE_API_KEY",
        "CEPAGE_API_KEY_FILE",
        "CEPAGE_FEEDBACK_KEY",
        "CEPAGE_MAX_RECORDS",
        "CEPAGE_API_TIMEOUT_SECONDS",
        "MLFLOW_TRACKING_URI",
        "CEPAGE_PROJECT_DIR",
    ):
        assert name in read, name
    assert "PATH" not in read  # stack/home.py reads it, but it is no setting of cepage's


def test_every_variable_read_is_documented_once_in_cli_md() -> None:
    problems = documentation_problems(variables_read(), read_docs())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("drift", ["row removed", "row repeated elsewhere"])
def test_a_drifted_settings_table_is_caught(drift: str) -> None:
    docs = read_docs()
    row = next(r for r in docs[HOME].splitlines() if r.startswith("| `CEPAGE_MAX_RECORDS` |"))
    if drift == "row removed":
        docs[HOME] = docs[HOME].replace(row + "\n", "")
        expected = "CEPAGE_MAX_RECORDS (read at bento/settings.py:"
    else:
        docs["docs/api.md"] += "\n| variable | default |\n|---|---|\n" + row + "\n"
        expected = "CEPAGE_MAX_RECORDS has 2 settings rows"
    read = variables_read()
    before = documentation_problems(read, read_docs())
    new = [p for p in documentation_problems(read, docs) if p not in before]
    assert len(new) == 1 and new[0].startswith(expected), new


def used_outside_the_docs() -> str:
    """The text of every file of the repository (tracked or new) but the Markdown pages and
    this test: code, compose, Caddyfile, playbooks, workflows, Terraform, scripts."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    texts: list[str] = []
    for name in listed:
        path = ROOT / name
        if name.endswith(".md") or path == Path(__file__) or not path.is_file():
            continue
        try:
            texts.append(path.read_text())
        except (UnicodeDecodeError, OSError):
            continue
    return "\n".join(texts)


def unused(docs: dict[str, str], elsewhere: str) -> list[str]:
    known = set(CEPAGE_NAME.findall(elsewhere))
    return [
        f"{name} ({doc})"
        for doc, text in docs.items()
        for name in sorted(set(CEPAGE_NAME.findall(text)) - known)
    ]


def test_every_documented_cepage_variable_is_used_somewhere() -> None:
    problems = unused(read_docs(), used_outside_the_docs())
    assert not problems, f"the docs name variables that nothing reads: {problems}"


def test_a_variable_nothing_reads_is_caught() -> None:
    docs = {"docs/cli.md": "| `CEPAGE_MAX_RECORD` | service | `1000` | typo |\n"}
    assert unused(docs, used_outside_the_docs()) == ["CEPAGE_MAX_RECORD (docs/cli.md)"]
