"""Starting, watching and stopping the processes a benchmark needs.

Every server runs in its own session (``start_new_session=True``) so that its whole process tree
(BentoML's arbiter and workers, MLflow's uvicorn child) is stopped with one signal to the group.
A :class:`Supervisor` stops whatever is still running on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STOP_TIMEOUT_S = 20.0


def stack_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a cepage process whose whole state lives in ``home``.

    The tools' own variables are dropped from the caller's environment first, so that a user's
    MLFLOW_TRACKING_URI or BENTOML_HOME cannot leak in. OPENBLAS_CORETYPE and the like are kept.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "BENTOML_"))}
    env.update(
        CEPAGE_HOME=str(home),
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
        BENTOML_HOME=str(home / "bentoml"),
        MLFLOW_DISABLE_TELEMETRY="true",
        BENTOML_DO_NOT_TRACK="true",
        CEPAGE_PROJECT_DIR=str(ROOT),
        PYTHONUNBUFFERED="1",
        # As in an activated venv: `mlflow models serve` execs `uvicorn` through the shell.
        PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
    )
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop ``proc`` (started in a new session) and every process it started.

    SIGTERM to its process group lets servers shut down cleanly; whatever is still alive after
    ``timeout`` s gets SIGKILL. The group is signalled only while its leader is not yet reaped
    (so its id cannot belong to anyone else). BentoML starts each worker in a session of its
    own, outside the group: the descendants are listed first, and any survivor among them, or
    in the group, is then stopped one by one.
    """
    descendants = _descendants(proc.pid)
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    _reap([*descendants, *_group_members(proc.pid)], timeout)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _descendants(pid: int) -> list[Any]:
    import psutil

    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


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


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, summed (shared pages count twice)."""
    import psutil

    total = 0
    for proc in process_tree(pid):
        try:
            total += int(proc.memory_info().rss)
        except psutil.Error:
            continue
    return total


class Supervisor:
    """Owns the processes of a run; stops every one of them when the ``with`` block ends.

    SIGTERM and SIGHUP are turned into KeyboardInterrupt while the block runs, so ``finally``
    clauses (and this supervisor) run whatever ends the benchmark.
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
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process group now."""
        stop_group(proc)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        """Stop every process group still owned (newest first)."""
        while self._procs:
            stop_group(self._procs.pop())


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


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
