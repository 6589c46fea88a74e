"""`make test`'s runner (tests/tools/suite.py): the rehearsal beside the other layers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.tools.suite import run_beside


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_both_run_at_once_and_the_side_log_comes_after_the_main_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Each waits for the other's file: run one after the other, they would both time out.
    main_file, side_file = tmp_path / "main-started", tmp_path / "side-started"
    wait = (
        "import pathlib, time, sys\n"
        "for _ in range(200):\n"
        "    if pathlib.Path({0!r}).exists(): break\n"
        "    time.sleep(0.05)\n"
        "else: sys.exit(9)\n"
    )
    main = python(
        f"import pathlib; pathlib.Path({str(main_file)!r}).touch()\n"
        + wait.format(str(side_file))
        + "print('main says hello')"
    )
    side = python(
        f"import os, pathlib; pathlib.Path({str(side_file)!r}).touch()\n"
        + wait.format(str(main_file))
        + "print('side says', os.environ['CEPAGE_TEST_IMAGE_TAG'])"
    )
    log = tmp_path / "side.log"
    status = run_beside(main, side, log, {"CEPAGE_TEST_IMAGE_TAG": "rehearsal"})
    out = capfd.readouterr().out
    assert status == 0, out
    assert "side says rehearsal" in log.read_text()
    assert out.index("main says hello") < out.index("side says rehearsal"), out


@pytest.mark.parametrize(
    ("main_exit", "side_exit", "expected"),
    [(0, 0, 0), (1, 0, 1), (0, 3, 3), (2, 3, 2)],
)
def test_the_run_fails_when_either_fails(
    tmp_path: Path, main_exit: int, side_exit: int, expected: int
) -> None:
    status = run_beside(
        python(f"raise SystemExit({main_exit})"),
        python(f"raise SystemExit({side_exit})"),
        tmp_path / "side.log",
        {},
    )
    assert status == expected
