"""How busy the machine was with *other* work while a server was measured.

Client and server share the machine's cores, and so does anything else running on it (another
test suite, a build). The share of the CPUs used by neither the server's process tree, nor wrk,
nor this benchmark is printed beside each server so that a noisy row can be recognised.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

# Below this share of busy CPUs the machine counts as quiet enough to measure.
QUIET_SHARE = 0.25


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far: by the whole machine, the server's tree and this process."""

    wall: float
    machine_busy: float
    server: float
    ours: float


def snapshot(*server_pids: int) -> CpuSnapshot:
    """Read the counters now (``server_pids``: the servers under load, their trees counted).

    wrk and the in-process floor are children this process waits for, so their CPU time is in
    ``RUSAGE_CHILDREN``; a server is still running, so its tree is read through psutil.
    """
    import psutil

    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    guest = getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSnapshot(
        wall=time.monotonic(),
        machine_busy=sum(times) - idle - guest,
        server=sum(_tree_cpu(pid) for pid in server_pids),
        ours=self_usage.ru_utime + self_usage.ru_stime + children.ru_utime + children.ru_stime,
    )


def background_share(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """Fraction (0-1) of all the machine's CPUs used by other processes between the two."""
    wall = max(after.wall - before.wall, 1e-9)
    others = (
        (after.machine_busy - before.machine_busy)
        - (after.server - before.server)
        - (after.ours - before.ours)
    )
    return min(max(others / (wall * (os.cpu_count() or 1)), 0.0), 1.0)


def _tree_cpu(pid: int) -> float:
    import psutil

    from stack.processes import process_tree

    total = 0.0
    for proc in process_tree(pid):
        try:
            cpu = proc.cpu_times()
        except psutil.Error:
            continue
        total += cpu.user + cpu.system
    return total


def wait_for_quiet(max_wait_s: float, threshold: float = QUIET_SHARE) -> float:
    """Wait (at most ``max_wait_s``) until the machine is below ``threshold`` busy; the last share.

    Samples one second at a time; returns the busy share of the last sample, so that a run that
    started on a busy machine says so.
    """
    import psutil

    share = psutil.cpu_percent(interval=1.0) / 100
    for _ in range(int(max_wait_s)):
        if share < threshold:
            break
        share = psutil.cpu_percent(interval=1.0) / 100
    return share
