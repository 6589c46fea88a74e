"""Every shell block of README.md and docs/ refers to things that exist.

The docs cannot drift from the code unnoticed: each ```bash block must parse (``bash -n``), and
every `make TARGET`, `cepage COMMAND --option`, `python -m MODULE`, `.venv/bin/TOOL` and repository
path it names must exist (gitignored paths such as compose/.env are the user's to create).
Blocks that can run here also run for real, elsewhere: docs/api.md's against a real service
(test_docs.py), install.md's local walkthrough against `cepage up` (test_stack.py, through
``run_block``).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import BIN, ROOT

pytestmark = pytest.mark.integration

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```(bash|sh|shell)\n(.*?)^ *```", re.DOTALL | re.MULTILINE)
MAKE_TARGET = re.compile(r"^([a-zA-Z0-9][\w-]*)\s*:(?!=)", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def shell_blocks(doc: Path) -> list[Block]:
    text = doc.read_text()
    return [  # blocks inside list items are indented: drop the indent
        Block(doc, text.count("\n", 0, match.start()) + 1, textwrap.dedent(match.group(3)))
        for match in FENCE.finditer(text)
    ]


BLOCKS = [block for doc in DOCS for block in shell_blocks(doc)]


def commands(text: str) -> list[list[str]]:
    """The block's commands as token lists: continuations joined, comments dropped, split at
    ``&&``, ``||``, ``;`` and ``|``."""
    joined = re.sub(r"\\\n", " ", text)
    result: list[list[str]] = []
    for line in joined.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
        except ValueError:  # an unbalanced quote inside $(...): bash -n judges the syntax
            continue
        current: list[str] = []
        for token in tokens:
            if token in {"&&", "||", ";", "|", "&"}:
                result.append(current)
                current = []
            else:
                current.append(token)
        result.append(current)
    return [strip_assignments(c) for c in result if c]


def strip_assignments(tokens: list[str]) -> list[str]:
    """Drop leading ``VAR=value`` and ``sudo``/``time`` prefixes: the program comes after."""
    index = 0
    while index < len(tokens) and (
        re.match(r"^[A-Za-z_]\w*=", tokens[index]) or tokens[index] in {"sudo", "time", "exec"}
    ):
        index += 1
    return tokens[index:]


@functools.cache
def top_folders() -> tuple[str, ...]:
    """The repository's top-level folders (``name/``), from what git tracks."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return tuple(sorted({f.split("/", 1)[0] + "/" for f in files if "/" in f}))


@functools.cache
def make_targets() -> frozenset[str]:
    return frozenset(MAKE_TARGET.findall((ROOT / "Makefile").read_text()))


@functools.cache
def cepage_help(command: str) -> str:
    env = {**os.environ, "COLUMNS": "300", "TERM": "dumb", "NO_COLOR": "1"}
    done = subprocess.run(
        [str(BIN / "cepage"), command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return done.stdout if done.returncode == 0 else ""


def problems(block: Block) -> list[str]:
    """What in this block does not exist (empty when everything does)."""
    found: list[str] = []
    syntax = subprocess.run(
        ["bash", "-n"], input=block.text, capture_output=True, text=True, check=False
    )
    if syntax.returncode != 0:
        found.append(f"bash -n: {syntax.stderr.strip()}")
    for tokens in commands(block.text):
        found += check_command(tokens)
    return found


def check_command(tokens: list[str]) -> list[str]:
    program, args = tokens[0], tokens[1:]
    found: list[str] = []
    if program == "make":
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        found += [f"make {t}: no such target" for t in targets if t not in make_targets()]
    if program.endswith("cepage") and args and not args[0].startswith("-"):
        help_text = cepage_help(args[0])
        if not help_text:
            found.append(f"cepage {args[0]}: no such command")
        for option in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
            if help_text and option not in help_text:
                found.append(f"cepage {args[0]} {option}: no such option")
    if program.startswith(".venv/bin/") and not (ROOT / program).exists():
        found.append(f"{program}: not installed by make setup")
    if Path(program).name.startswith("python") and "-m" in args[:-1]:
        module = args[args.index("-m") + 1]
        if not module_exists(module):
            found.append(f"python -m {module}: no such module")
    if program in {"cp", "mv", "ln", "install"}:
        args = args[:-1]  # the destination is what the command creates
    found += [f"{arg}: no such file" for arg in [program, *args] if missing_path(arg)]
    return found


def module_exists(module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    done = subprocess.run([str(BIN / "python"), "-c", code], cwd=ROOT, timeout=60, check=False)
    return done.returncode == 0


def missing_path(token: str) -> bool:
    """A token that names a file of this repository (by its top folder) that is not there."""
    path = token.split("=", 1)[-1].split(":", 1)[0]
    if not path.startswith(top_folders()) or "$" in path:
        return False
    if "*" in path:
        return not list(ROOT.glob(path))
    return not (ROOT / path).exists() and not user_file(path)


def user_file(path: str) -> bool:
    """A gitignored path (compose/.env, a vault): the user creates it from its example."""
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    return done.returncode == 0


def run_block(
    block: Block, replacements: dict[str, str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a documented block as written (with the given text replacements, e.g. ports)."""
    script = block.text
    for old, new in replacements.items():
        script = script.replace(old, new)
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )


def find_block(doc: str, starting: str) -> Block:
    """The block of ``doc`` whose first line starts with ``starting``."""
    matches = [b for b in shell_blocks(ROOT / doc) if b.text.startswith(starting)]
    assert len(matches) == 1, f"{doc}: {len(matches)} blocks start with {starting!r}"
    return matches[0]


def test_the_docs_have_shell_blocks() -> None:
    assert len(BLOCKS) >= 20
    assert {b.doc.name for b in BLOCKS} >= {"README.md", "install.md", "api.md"}


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_every_documented_command_exists(block: Block) -> None:
    assert problems(block) == [], block.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("make no-such-target ENV=dev", "make no-such-target: no such target"),
        (".venv/bin/cepage retrain --nope 3", "cepage retrain --nope: no such option"),
        ("cepage fly", "cepage fly: no such command"),
        ("docker compose -f compose/nope.yml up", "compose/nope.yml: no such file"),
        (".venv/bin/python -m bench.nope", "python -m bench.nope: no such module"),
        (".venv/bin/nope --help", ".venv/bin/nope: not installed by make setup"),
        ("echo 'unclosed", "bash -n"),
    ],
)  # fmt: skip
def test_a_drifted_command_is_caught(text: str, expected: str) -> None:
    found = problems(Block(ROOT / "docs" / "x.md", 1, text + "\n"))
    assert any(p.startswith(expected) for p in found), found
