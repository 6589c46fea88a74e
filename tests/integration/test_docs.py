"""Every shell example of docs/api.md runs as written against a real service.

The examples target the local stack's URL; the test swaps in the test server's URL, runs each block
with bash, and checks that the JSON it prints has the keys of the example shown after it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.procs import ROOT

pytestmark = pytest.mark.integration

DOCUMENTED_URL = "http://127.0.0.1:3000"
BLOCK = re.compile(r"```(bash|json)\n(.*?)```", re.DOTALL)


def examples(path: Path) -> list[tuple[str, str | None]]:
    """(shell block, the JSON block right after it if any)."""
    blocks = BLOCK.findall(path.read_text())
    pairs: list[tuple[str, str | None]] = []
    for index, (kind, text) in enumerate(blocks):
        if kind != "bash":
            continue
        follower = blocks[index + 1] if index + 1 < len(blocks) else None
        pairs.append((text, follower[1] if follower and follower[0] == "json" else None))
    return pairs


API_EXAMPLES = examples(ROOT / "docs" / "api.md")


def test_the_api_doc_has_examples_for_every_endpoint() -> None:
    text = "\n".join(block for block, _ in API_EXAMPLES)
    for path in ("/predict", "/metadata", "/feedback", "/metrics"):
        assert f"{DOCUMENTED_URL}{path}" in text


@pytest.mark.parametrize(("block", "expected"), API_EXAMPLES, ids=lambda v: str(v)[:40])
def test_api_example_runs_as_written(api_url: str, block: str, expected: str | None) -> None:
    script = block.replace(DOCUMENTED_URL, api_url)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the example printed nothing"
    if expected is not None:
        shown = json.loads(re.sub(r'"\.\.\."', "null", expected))
        actual = json.loads(done.stdout)
        assert set(shown) == set(actual), f"doc shows {sorted(shown)}, API gives {sorted(actual)}"
