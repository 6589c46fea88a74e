"""`make screenshots` end to end, into a temporary folder: the real stack (`cepage up` in its
own home on free ports), the real browser, every picture the docs show, none of them blank or a
loading skeleton. The committed pictures (docs/img/) are not touched; that they are the ones the
docs show is checked by tests/integration/test_readmes.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from scripts.screenshots import HEIGHT, SHOTS, WIDTH, ScreenshotError, find_chromium, take
from tests.support.procs import require

pytestmark = [pytest.mark.ui, pytest.mark.slow]

# A palette PNG of a page; the largest committed one is ~50 KB.
MAX_BYTES = 150_000
MIN_COLOURS = 8  # a blank or half-drawn page has a handful


def test_screenshots_of_the_real_stack(tmp_path: Path) -> None:
    try:
        chromium = find_chromium()
    except ScreenshotError as exc:
        require(False, str(exc))
        raise
    out = tmp_path / "img"

    shots = take(out, tmp_path / "work", chromium)

    assert sorted(path.name for path in shots) == sorted(SHOTS)
    assert sorted(path.name for path in out.iterdir()) == sorted(SHOTS)
    for path in shots:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "P", path.name
            assert image.width <= WIDTH and image.height <= HEIGHT, path.name
            colours = image.getcolors(maxcolors=256)
        assert colours is not None and len(colours) >= MIN_COLOURS, f"{path.name} looks blank"
        assert path.stat().st_size <= MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes"
