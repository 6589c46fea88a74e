"""bench/clock.py: process start times that cold starts can be read from, to the clock tick."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import clock


def _tick() -> float:
    return 1 / os.sysconf("SC_CLK_TCK") if sys.platform.startswith("linux") else 0.01


def test_a_child_started_between_the_two_readings_around_its_start() -> None:
    # psutil's epoch create_time() fails this by the fraction of a second the boot time was cut
    # by (0.15 s on the machine of the 2026-12-01 runs): why bench/clock.py exists.
    before = clock.now()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        after = clock.now()
        started = clock.started(child.pid)
    finally:
        child.kill()
        child.wait()
    assert before - _tick() <= started <= after + _tick(), (before, started, after)


def test_this_process_is_older_than_zero_and_a_gone_one_has_no_start() -> None:
    assert clock.age() > 0
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        clock.started(child.pid)
