"""Starting, watching and stopping server processes: the one helper of the local stack
(``cepage up``), the benchmarks and the tests.

Every server runs in its own session (``start_new_session=True``) so that its whole tree
(BentoML's arbiter and workers, MLflow's uvicorn child) is stopped with one signal to the group.
BentoML starts each worker in a session of its own, outside that group: :func:`stop_group` lists
the descendants first and stops any survivor among them too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 20.0


class NotReadyError(RuntimeError):
    """A server died or did not become ready; the message ends with the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """True when ``port`` can be bound on ``host`` now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def start(
    argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the caller only; it stops the group
        )


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    """Call ``check()`` until it returns True; False after ``timeout`` s (bounded in count too)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        if check():
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return False


def wait_ready(
    url: str, proc: subprocess.Popen[bytes] | None, *, timeout: float, log: Path
) -> None:
    """Wait until ``url`` answers 200.

    Raises:
        NotReadyError: ``proc`` exited or ``timeout`` s passed; with the tail of ``log``.
    """
    died = False

    def ready() -> bool:
        nonlocal died
        if proc is not None and proc.poll() is not None:
            died = True
            return True
        return answers(url)

    ok = wait_until(ready, timeout=timeout, interval=0.25)
    tail = log.read_text(errors="replace")[-4000:] if log.is_file() else ""
    if died:
        assert proc is not None
        raise NotReadyError(f"process exited ({proc.returncode}):\n{tail}")
    if not ok:
        raise NotReadyError(f"{url} not ready after {timeout}s:\n{tail}")


@contextmanager
def running(
    argv: Sequence[str],
    *,
    log: Path,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` (see :func:`start`), wait for ``ready_url``, stop its tree afterwards."""
    proc = start(argv, log=log, env=env)
    try:
        wait_ready(ready_url, proc, timeout=timeout, log=log)
        yield proc
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop ``proc`` (started in a new session) and every process it started.

    SIGTERM to its process group lets servers shut down cleanly; whatever is still alive after
    ``timeout`` s gets SIGKILL. The group is signalled only while its leader is not yet reaped
    (so its id cannot belong to anyone else). The descendants are listed first, and any survivor
    among them, or in the group, is then stopped one by one.
    """
    descendants = process_tree(proc.pid)[1:]
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    _reap([*descendants, *_group_members(proc.pid)], timeout)


def stop_groups(procs: Sequence[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop several groups at once: SIGTERM to all, one shared deadline, then SIGKILL to what is
    left of any of them (their escaped descendants included)."""
    trees = [process_tree(proc.pid)[1:] for proc in procs]
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    for proc, tree in zip(procs, trees, strict=True):
        _reap([*tree, *_group_members(proc.pid)], timeout=2.0)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_members(pgid: int) -> list[Any]:
    """Processes still in process group ``pgid`` (its leader already gone)."""
    import psutil

    members = []
    for candidate in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getpgid(candidate.pid) == pgid:
                members.append(candidate)
    return members


def _reap(procs: list[Any], timeout: float) -> None:
    """SIGTERM, then SIGKILL, the survivors among ``procs`` (psutil handles: pid-reuse safe)."""
    import psutil

    alive = [p for p in procs if p.is_running()]
    for stop in (psutil.Process.terminate, psutil.Process.kill):
        if not alive:
            return
        for p in alive:
            with contextlib.suppress(psutil.Error):
                stop(p)
        _, alive = psutil.wait_procs(alive, timeout=timeout / 2)


def process_tree(pid: int) -> list[Any]:
    """``pid`` and all its descendants as psutil processes ([] when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _tree_sum(pid: int, read: Callable[[Any], int]) -> int:
    """``read(process)`` summed over ``pid`` and all its descendants (gone ones skipped)."""
    import psutil

    total = 0
    for proc in process_tree(pid):
        try:
            total += int(read(proc))
        except psutil.Error:
            continue
    return total


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, summed (shared pages count twice)."""
    return _tree_sum(pid, lambda proc: proc.memory_info().rss)


def tree_uss_bytes(pid: int) -> int:
    """Unique memory (USS: pages no other process maps) of ``pid`` and its descendants, summed:
    what the tree would give back if it stopped, shared libraries' pages not counted twice."""
    return _tree_sum(pid, lambda proc: proc.memory_full_info().uss)


class Supervisor:
    """Owns the processes of a run; stops every one of them when the ``with`` block ends.

    SIGTERM and SIGHUP are turned into KeyboardInterrupt while the block runs, so ``finally``
    clauses (and this supervisor) run whatever ends the run.
    """

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Supervisor:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, _interrupt)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def start(
        self, argv: Sequence[str], *, env: Mapping[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` from the repository root in a new session, output into ``log``."""
        proc = start(argv, log=log, env=env)
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process group now."""
        stop_group(proc)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        """Stop every process group still owned, all at once."""
        procs, self._procs = self._procs, []
        stop_groups(procs)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
