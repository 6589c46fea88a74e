"""Fixtures shared by the integration and UI tests: one real MLflow store and served model."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from stack.home import prepare_home
from tests.support import skips
from tests.support.mixed_data import CUSTOMERS_CSV
from tests.support.mixed_data import TARGET as MIXED_TARGET
from tests.support.procs import bentoml_serve, cepage, stack_env

# The Docker engine and the project's images: one instance per pytest process for the Docker tests
# and the rehearsal alike (fixtures defined in two conftests would be made, and the images built,
# twice). `make test` runs the rehearsal in a process of its own (tests/tools/suite.py): it builds
# its own images, under another tag.
pytest_plugins = ("tests.docker.fixtures",)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter,
) -> Generator[None, object, object]:
    """At the end of the run: the layers that did not run for a missing tool, and `make deps`."""
    return (yield from skips.pytest_terminal_summary(terminalreporter))


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CEPAGE_HOME holding a real SQLite MLflow store with a champion imported into BentoML.

    Built through the real CLI (train -> promote -> package without the Bento build, which the
    CLI tests exercise on their own store).
    """
    return prepare_home(tmp_path_factory.mktemp("cepage-home"))


@pytest.fixture(scope="session")
def api_url(trained_home: Path) -> Iterator[str]:
    """Base URL of a real `bentoml serve` process (one worker) serving the champion."""
    with bentoml_serve(trained_home) as url:
        yield url


@pytest.fixture(scope="session")
def metadata(api_url: str) -> dict[str, Any]:
    response = requests.get(f"{api_url}/metadata", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="session")
def median_record(metadata: dict[str, Any]) -> dict[str, float]:
    """A valid record: every feature at its training median."""
    return {f["name"]: f["median"] for f in metadata["feature_schema"]["features"]}


@pytest.fixture(scope="session")
def mixed_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw CSV the README trains on (examples/customers.csv): every feature kind, blanks and
    a text label; a copy, so a test may write beside it."""
    copy = tmp_path_factory.mktemp("mixed-data") / "customers.csv"
    copy.write_bytes(CUSTOMERS_CSV.read_bytes())
    return copy


@pytest.fixture(scope="session")
def mixed_home(tmp_path_factory: pytest.TempPathFactory, mixed_csv: Path) -> Path:
    """A CEPAGE_HOME whose champion was trained on :func:`mixed_csv` by the real CLI."""
    return prepare_home(
        tmp_path_factory.mktemp("cepage-mixed-home"),
        train_args=("--data", str(mixed_csv), "--target", MIXED_TARGET),
    )


@pytest.fixture(scope="session")
def mixed_api_url(mixed_home: Path) -> Iterator[str]:
    """Base URL of a real `bentoml serve` process serving the mixed-data champion."""
    with bentoml_serve(mixed_home) as url:
        yield url


@pytest.fixture(scope="session")
def forest_home(tmp_path_factory: pytest.TempPathFactory, mixed_csv: Path) -> Path:
    """A home whose champion is a forest trained on the mixed data by the real CLI (the noisy
    generated label leaves it just under the default macro-F1 floor: the gate is not what its
    tests test)."""
    home = tmp_path_factory.mktemp("cepage-forest-home")
    env = stack_env(home)
    data = ("--data", str(mixed_csv), "--target", MIXED_TARGET)
    for args in (("train", *data, "--model", "forest"), ("promote", "--floor", "0.5")):
        done = cepage(*args, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    done = cepage("package", "--no-build", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return home


@pytest.fixture(scope="session")
def forest_url(forest_home: Path) -> Iterator[str]:
    """Base URL of a real `bentoml serve` process serving the forest champion."""
    with bentoml_serve(forest_home) as url:
        yield url


@pytest.fixture(scope="session")
def mixed_metadata(mixed_api_url: str) -> dict[str, Any]:
    response = requests.get(f"{mixed_api_url}/metadata", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body
