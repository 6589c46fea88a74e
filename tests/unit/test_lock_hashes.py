"""Every lock file pins each requirement with its sha256 hashes, so that every install from it
(``make setup``'s ``uv pip sync``, the Dockerfiles' ``uv pip install -r``/``-c``, the Bento's
requirements.txt) verifies each downloaded artifact: uv checks the hashes a file gives.

A requirement spans several lines (``name==version ; marker \\`` then ``--hash=sha256:...``
continuation lines); the parser joins them the way pip and uv read a requirements file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.support.procs import ROOT

LOCKS = (
    "requirements/dev.lock",
    "requirements/service.lock",
    "requirements/ui.lock",
    "compose/mlflow/requirements.lock",
)
# A comment starts a line or follows whitespace (pip's rule): `#` inside a URL is not one.
COMMENT = re.compile(r"(^|\s+)#.*$")
HASH = re.compile(r"--hash[=\s]+sha256:([0-9a-f]{64})(?=\s|$)")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==[^\s;]+(\s*;.+)?$")


@dataclass(frozen=True)
class Requirement:
    line: int  # where it starts in the file (1-based)
    spec: str  # `name==version ; marker`, without its options
    hashes: tuple[str, ...]

    @property
    def name(self) -> str:
        return re.split(r"[\s=<>!~;\[]", self.spec, maxsplit=1)[0]


def requirements(text: str) -> list[Requirement]:
    """The requirements of a requirements file: continuations joined, comments and blank
    lines dropped, option-only lines (``--index-url ...``) skipped."""
    found: list[Requirement] = []
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = COMMENT.sub("", raw).rstrip()
        if not logical:
            start = number
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical = (logical + line).strip()
        if logical and not logical.startswith("-"):
            spec = re.split(r"\s--", logical, maxsplit=1)[0].strip()
            found.append(Requirement(start, spec, tuple(HASH.findall(logical))))
        logical = ""
    if logical.strip():
        raise ValueError(f"line {start}: a continuation runs off the end of the file")
    return found


def problems(text: str) -> list[str]:
    """What keeps this lock from verifying every artifact: unpinned or unhashed requirements."""
    reqs = requirements(text)
    if not reqs:
        return ["no requirement at all"]
    out: list[str] = []
    for r in reqs:
        if not PIN.match(r.spec):
            out.append(f"line {r.line}: {r.spec!r} is not pinned with ==")
        if not r.hashes:
            out.append(f"line {r.line}: {r.name} has no --hash=sha256:")
    return out


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_requirement_is_pinned_with_sha256_hashes(lock: str) -> None:
    found = problems((ROOT / lock).read_text())
    assert not found, (
        f"{lock}: regenerate it with --generate-hashes (`make lock`, or the command in "
        "compose/mlflow/requirements.lock's header):\n" + "\n".join(found[:20])
    )


HASHED = """\
# a header comment
aiohttp==3.14.5 \\
    --hash=sha256:0133c3c3b54a0bf1e71fa5c1ad95c93f07fd54e24ef1fe182f5122e1573d2bf1 \\
    --hash=sha256:038c2c7e8caa26b6c8423779b5eaf1893904048a512c19b32fe841ffa5592b50
    # via mlflow, -c requirements/dev.lock
numpy==2.4.6 ; python_full_version < '3.12' \\
    --hash=sha256:{h}
    # via pandas

uvloop==0.23.0 ; sys_platform != 'win32' --hash=sha256:{h}  # via cepage (pyproject.toml)
"""


def test_the_parser_joins_continuations_and_reads_markers_and_hashes() -> None:
    text = HASHED.format(h="a" * 64)
    reqs = requirements(text)
    assert [(r.line, r.spec, len(r.hashes)) for r in reqs] == [
        (2, "aiohttp==3.14.5", 2),
        (6, "numpy==2.4.6 ; python_full_version < '3.12'", 1),
        (10, "uvloop==0.23.0 ; sys_platform != 'win32'", 1),
    ]
    assert [r.name for r in reqs] == ["aiohttp", "numpy", "uvloop"]
    assert problems(text) == []


def test_a_lock_without_hashes_is_refused() -> None:
    """The format of the locks before --generate-hashes (one line each, uv's line annotations)."""
    old = (
        "altair==6.3.0             # via streamlit\n"
        "numpy==2.4.6 ; python_full_version < '3.12'  # via pandas, pydeck, streamlit\n"
    )
    assert problems(old) == [
        "line 1: altair has no --hash=sha256:",
        "line 2: numpy has no --hash=sha256:",
    ]


def test_one_unhashed_entry_among_hashed_ones_is_named() -> None:
    text = HASHED.format(h="b" * 64) + "bentoml==1.4.40\n"
    assert problems(text) == ["line 11: bentoml has no --hash=sha256:"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"pandas>=2.2 --hash=sha256:{'c' * 64}\n", "line 1: 'pandas>=2.2' is not pinned with =="),
        ("x==1 --hash=sha256:abc\n", "line 1: x has no --hash=sha256:"),  # not a sha256 digest
        ("# only comments\n\n", "no requirement at all"),
    ],
)
def test_unpinned_malformed_and_empty_locks_are_refused(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_a_dangling_continuation_is_an_error() -> None:
    with pytest.raises(ValueError, match="runs off the end"):
        requirements("six==1.17.0 \\\n")
