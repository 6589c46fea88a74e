"""Fixtures of the rehearsal: the deployed topology run whole on this machine (issue 13).

The engine, the base image and the project's images are tests/docker/fixtures.py's (``docker``
and ``images``: one instance per pytest process, shared with the Docker tests when they run in the
same one; under `make test` the rehearsal has a process of its own, tests/tools/suite.py);
the hosts, registry and inventory are tests/rehearsal/hosts.py's; the deploy is
playbooks/deploy.sh's (tests/rehearsal/deploy.py). A missing tool skips on a laptop and fails
with CI=true (tests/support/procs.require).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.docker.conftest import Docker
from tests.rehearsal import hosts
from tests.support.procs import require

# What each upstream image of the last rehearsal was (pulled, or which stand-in), for the summary.
UPSTREAM_REPORT: list[str] = []
# The figures of the prod layout's checks (deploy times, requests and failures, switch times).
FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which upstream images ran for real and which were stand-ins (and Grafana's case)."""
    if UPSTREAM_REPORT:
        terminalreporter.write_sep("-", "rehearsal: upstream images the hosts ran")
        for line in UPSTREAM_REPORT:
            terminalreporter.write_line(line)
    if FIGURES:
        terminalreporter.write_sep("-", "rehearsal: figures of the prod layout")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def engine(docker: Docker) -> hosts.Docker:
    """The private engine, as the rehearsal's own thin CLI wrapper."""
    return hosts.Docker(dict(docker.env))


@pytest.fixture(scope="session")
def host_image(engine: hosts.Docker) -> str:
    """The host image (its compose v2 plugin built from source with Go: cached)."""
    try:
        return hosts.host_image(engine)
    except RuntimeError as exc:
        require(False, f"the rehearsal's host image cannot be built (Go toolchain?): {exc}")
        raise


@contextmanager
def started(engine: hosts.Docker, layout: str, host_image: str) -> Iterator[hosts.Rehearsal]:
    """A layout's network, registry and booted hosts; everything removed afterwards."""
    del host_image  # built (and cached) by its fixture; start() finds it by its tag
    rehearsal = hosts.start(engine, layout)
    try:
        yield rehearsal
    finally:
        rehearsal.teardown()
