"""README.fr.md keeps in step with README.md, and the pictures the docs show are the ones
`make screenshots` takes.

Both READMEs must give the same shell commands in the same order (comments aside: they are
translated) and the same links and URLs; the English one's commands are themselves checked against
the code by test_doc_commands.py. Every picture of scripts/screenshots.py is committed under
docs/img/ and shown by the README, every picture a page shows exists, and docs/img/ holds nothing
else (a stale picture would outlive its page).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.screenshots import OUT, SHOTS
from tests.support.procs import ROOT

pytestmark = pytest.mark.integration

README = ROOT / "README.md"
README_FR = ROOT / "README.fr.md"
FENCE = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.DOTALL | re.MULTILINE)
COMMENT = re.compile(r"(^|\s)#.*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")
URL = re.compile(r"https?://[^\s|)>`'\"]+")
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
# Each README names the other: that one link differs.
SWITCH = {README.name, README_FR.name}


def shell_commands(text: str) -> list[str]:
    """Every command line of the shell blocks, comments dropped, spaces normalised."""
    lines = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            command = " ".join(COMMENT.sub("", line).split())
            if command:
                lines.append(command)
    return lines


def links(text: str) -> set[str]:
    """Markdown link and image targets, and bare URLs, minus the link to the other README."""
    found = set(LINK.findall(text)) | {url.rstrip(".,;:") for url in URL.findall(text)}
    return {target for target in found if target.split("#")[0] not in SWITCH}


def test_both_readmes_give_the_same_commands() -> None:
    english, french = shell_commands(README.read_text()), shell_commands(README_FR.read_text())
    assert english, "README.md has no shell block"
    assert french == english


def test_both_readmes_give_the_same_links() -> None:
    english, french = links(README.read_text()), links(README_FR.read_text())
    assert english - french == set(), "in README.md, not in README.fr.md"
    assert french - english == set(), "in README.fr.md, not in README.md"


def test_each_readme_points_to_the_other() -> None:
    assert f"]({README_FR.name})" in README.read_text()
    assert f"]({README.name})" in README_FR.read_text()


def test_the_french_readme_says_what_cepage_means() -> None:
    text = README_FR.read_text()
    assert "cépage" in text.lower()
    assert "variété" in text.lower() or "cultivar" in text.lower()


def test_the_readme_shows_every_picture_the_command_takes() -> None:
    shown = {Path(target).name for _, target in IMAGE.findall(README.read_text())}
    assert set(SHOTS) <= shown


def test_the_english_pages_use_each_picture_s_description_as_alt_text() -> None:
    for doc in (README, ROOT / "docs" / "ui.md"):
        for alt, target in IMAGE.findall(doc.read_text()):
            name = Path(target).name
            if name in SHOTS:
                assert alt == SHOTS[name], f"{doc.name}: {name}"


def test_every_picture_a_page_shows_exists() -> None:
    for doc in [README, README_FR, *sorted((ROOT / "docs").glob("*.md"))]:
        for alt, target in IMAGE.findall(doc.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            assert (doc.parent / target).is_file(), f"{doc.name}: {target} is missing"
            assert alt.strip(), f"{doc.name}: {target} has no alt text"


def test_the_committed_pictures_are_the_ones_the_command_takes() -> None:
    assert OUT == ROOT / "docs" / "img"
    assert sorted(path.name for path in OUT.iterdir()) == sorted(SHOTS)
