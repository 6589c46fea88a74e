"""When a process started, on a clock this process can read too: cold starts to the 10 ms.

psutil's ``Process.create_time()`` is an epoch time built from the boot time that ``/proc/stat``
gives in whole seconds, so on Linux it is early by the fraction of a second that boot time was
cut by: 0 to 1 s, the same for every process of one boot (0.15 s on the machine of the
2026-12-01 runs, where it made the floor's cold start look that much longer). On Linux the start
is read instead as clock ticks since boot (``/proc/PID/stat``, field 22) and compared with
``CLOCK_BOOTTIME``, the clock those ticks count on. Elsewhere (macOS) psutil's time is exact and
is used with the wall clock.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

_LINUX = sys.platform.startswith("linux")


def now() -> float:
    """Seconds on the clock :func:`started` answers in."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if _LINUX else time.time()


def started(pid: int) -> float:
    """When process ``pid`` started, on :func:`now`'s clock (ProcessLookupError: it is gone)."""
    if _LINUX:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            raise ProcessLookupError(pid) from None
        # The command name (field 2) may hold spaces or parentheses: count from its last ')'.
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return ticks / os.sysconf("SC_CLK_TCK")
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        raise ProcessLookupError(pid) from None


def age(pid: int | None = None) -> float:
    """Seconds since process ``pid`` (default: this one) started."""
    return now() - started(os.getpid() if pid is None else pid)
