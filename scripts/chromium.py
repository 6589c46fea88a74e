"""Which Chromium to drive, and how: one answer for the docs' screenshots and the browser test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MACOS_APPS = (
    Path("/Applications/Chromium.app/Contents/MacOS/Chromium"),
    Path("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"),
)
# Headless on a machine that reaches no browser service: no sandbox (root in CI), no GPU, no
# background updates, syncs or first-run pages.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
MISSING = (
    "no Chromium found: apt-get install chromium, `.venv/bin/playwright install chromium`, "
    "or set CEPAGE_CHROMIUM to a Chromium or Chrome executable"
)


def locate() -> Path | None:
    """CEPAGE_CHROMIUM, else a Chromium or Chrome on PATH or in macOS's /Applications, else the
    one `playwright install chromium` downloaded; None when there is none. (CEPAGE_CHROMIUM is
    returned as given: the caller says when it is not a file.)"""
    configured = os.environ.get("CEPAGE_CHROMIUM", "").strip()
    if configured:
        return Path(configured)
    for name in NAMES:
        if found := shutil.which(name):
            return Path(found)
    for app in MACOS_APPS:
        if app.is_file():
            return app
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        bundled = Path(playwright.chromium.executable_path)
    return bundled if bundled.is_file() else None
