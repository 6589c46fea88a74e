"""`make test`'s runner (tests/tools/suite.py): the rehearsal beside the other layers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.procs import ROOT
from tests.tools.suite import BESIDE, BESIDE_IMAGE_TAG, IMAGE_TAG_VARIABLE, commands, run_beside


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def wait_for(path: Path) -> str:
    """Python that waits up to 10 s for ``path``, exiting 9 if it never comes."""
    return (
        "import pathlib, time, sys\n"
        "for _ in range(200):\n"
        f"    if pathlib.Path({str(path)!r}).exists(): break\n"
        "    time.sleep(0.05)\n"
        "else: sys.exit(9)\n"
    )


def test_both_run_at_once_and_the_side_log_comes_after_the_main_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Each waits for the other's file: run one after the other, the first would exit 9.
    main_file, side_file = tmp_path / "main-started", tmp_path / "side-started"
    main = python(
        f"import pathlib; pathlib.Path({str(main_file)!r}).touch()\n"
        + wait_for(side_file)
        + "print('main says hello')"
    )
    side = python(
        f"import os, pathlib; pathlib.Path({str(side_file)!r}).touch()\n"
        + wait_for(main_file)
        + f"print('side says', os.environ[{IMAGE_TAG_VARIABLE!r}])"
    )
    log = tmp_path / "side.log"
    status = run_beside(main, side, log, {}, {IMAGE_TAG_VARIABLE: "rehearsal"})
    out = capfd.readouterr().out
    assert status == 0, out
    assert "side says rehearsal" in log.read_text()
    assert out.index("main says hello") < out.index("side says rehearsal"), out
    assert out.rstrip().endswith(f"0 for {' '.join(side)}"), out[-300:]


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
        {},
    )
    assert status == expected


def test_ctrl_c_lets_both_finish_their_teardown(tmp_path: Path) -> None:
    """Ctrl-C goes to the whole process group: the runner must wait for both children's
    teardowns (a `subprocess.run` child is killed 0.25 s after the KeyboardInterrupt)."""

    def child(name: str) -> list[str]:
        return python(
            "import pathlib, time\n"
            f"pathlib.Path({str(tmp_path / (name + '-ready'))!r}).touch()\n"
            "try:\n"
            "    time.sleep(30)\n"
            "finally:\n"
            "    time.sleep(1)  # a teardown that takes a while\n"
            f"    pathlib.Path({str(tmp_path / (name + '-done'))!r}).touch()\n"
        )

    runner = subprocess.Popen(  # nosec B603: this test's own script
        python(
            "import sys; from pathlib import Path; from tests.tools.suite import run_beside\n"
            f"sys.exit(run_beside({child('main')!r}, {child('side')!r}, "
            f"Path({str(tmp_path / 'side.log')!r}), {{}}, {{}}))"
        ),
        cwd=ROOT,
        start_new_session=True,  # its own process group, as a terminal's job is
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not all((tmp_path / f"{n}-ready").exists() for n in ("main", "side")):
        assert time.monotonic() < deadline and runner.poll() is None, runner.stdout
        time.sleep(0.05)
    os.killpg(runner.pid, signal.SIGINT)
    out, _ = runner.communicate(timeout=20)
    assert (tmp_path / "main-done").exists(), out
    assert (tmp_path / "side-done").exists(), out
    assert runner.returncode != 0, out
    assert "run beside the above" in out, out


def test_the_rehearsal_gets_its_own_image_tag_and_no_pytest_cache() -> None:
    main, beside, main_env, beside_env = commands(
        "pytest", {"PATH": "/bin", IMAGE_TAG_VARIABLE: "mine"}
    )
    assert beside[1] == BESIDE and f"--ignore={BESIDE}" in main
    assert beside_env[IMAGE_TAG_VARIABLE] == BESIDE_IMAGE_TAG != "test"
    assert IMAGE_TAG_VARIABLE not in main_env and main_env["PATH"] == "/bin"
    assert "no:cacheprovider" in beside and "no:cacheprovider" not in main
