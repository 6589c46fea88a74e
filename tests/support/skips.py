"""The end of a run says which layers did not run for a missing tool, and how to install them.

``tests.support.procs.require`` notes each reason it skips (or, with CI=true, fails) for; the
``pytest_terminal_summary`` hook below groups the tests that ended on one of those reasons and
prints one short block, or nothing when every layer ran. ``tests/conftest.py`` loads it for the
whole suite; ``pytest -p tests.support.skips`` loads it anywhere else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field

import pytest

__all__ = ["DEPS_COMMAND", "missing_tool_summary", "note", "pytest_terminal_summary"]

# The one command that installs every system package and tool the suite drives (.ci/deps,
# which .ci/run calls too, so there is one list).
DEPS_COMMAND = "make deps"
CI_PREFIX = "CI=true and "
_REASONS: set[str] = set()


def note(reason: str) -> None:
    """Remember a reason ``require`` skipped or failed for, so the summary can group it."""
    _REASONS.add(reason)


@dataclass
class _Group:
    tests: int = 0
    layers: set[str] = field(default_factory=set)


def _layer(nodeid: str) -> str:
    """``tests/docker`` for ``tests/docker/test_x.py::test_y``; else the test file's folder."""
    parts = nodeid.split("::", 1)[0].split("/")
    if len(parts) >= 3 and parts[0] == "tests":
        return "/".join(parts[:2])
    return "/".join(parts[:-1]) or parts[0]


def _reason(report: pytest.TestReport) -> str | None:
    """The ``require`` reason a test ended on (skipped, or failed under CI=true), else None."""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    elif report.failed and report.longreprtext.startswith(CI_PREFIX):
        text = report.longreprtext.strip().removeprefix(CI_PREFIX)
    else:
        return None
    return text if text in _REASONS else None


def _grouped(reports: list[pytest.TestReport]) -> dict[str, _Group]:
    groups: dict[str, _Group] = defaultdict(_Group)
    seen: set[str] = set()
    for report in reports:
        reason = _reason(report)
        if reason is None or report.nodeid in seen:
            continue
        seen.add(report.nodeid)
        group = groups[reason.splitlines()[0].rstrip(":")]
        group.tests += 1
        group.layers.add(_layer(report.nodeid))
    return dict(sorted(groups.items(), key=lambda item: (-item[1].tests, item[0])))


def _block(head: str, groups: dict[str, _Group], tail: list[str]) -> list[str]:
    total = sum(group.tests for group in groups.values())
    lines = [head.format(total=total, tests="test" if total == 1 else "tests")]
    for reason, group in groups.items():
        count = f"{group.tests} test" + ("" if group.tests == 1 else "s")
        lines.append(f"  {reason}: {count} ({', '.join(sorted(group.layers))})")
    return [*lines, *tail]


def missing_tool_summary(reports: list[pytest.TestReport]) -> list[str]:
    """The lines of the block: empty when no test skipped or failed for a missing tool."""
    skipped = _grouped([report for report in reports if report.skipped])
    failed = _grouped([report for report in reports if report.failed])
    lines: list[str] = []
    if skipped:
        lines += _block(
            "{total} {tests} did not run because a tool they drive is missing:",
            skipped,
            [
                f"One command installs them all: `{DEPS_COMMAND}` (.ci/deps, the list CI",
                "installs too); then `make test` runs every layer.",
            ],
        )
    if failed:
        lines += _block(
            "{total} {tests} failed because CI=true and a tool they drive is missing:",
            failed,
            [
                f"Install them before the tests: `{DEPS_COMMAND}` (or `.ci/run`, which runs it",
                "then `make test`). Without CI=true these tests skip instead of failing.",
            ],
        )
    return lines


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter,
) -> Generator[None, object, object]:
    """Print the block at the very end, after pytest's own short summary (the outermost wrapper)."""
    result = yield
    reports = [
        report
        for key in ("skipped", "failed", "error")
        for report in terminalreporter.stats.get(key, [])
        if isinstance(report, pytest.TestReport)
    ]
    lines = missing_tool_summary(reports)
    if lines:
        terminalreporter.write_sep("=", "layers that did not run", yellow=True, bold=True)
        for line in lines:
            terminalreporter.write_line(line)
    return result
