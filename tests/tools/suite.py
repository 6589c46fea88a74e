"""`make test`: the rehearsal beside the other layers, in two pytest processes.

Why: run one after the other, the layers took ~92-98 min on 2 cores, over CI's 90-minute limit,
~45 of them the rehearsal (tests/rehearsal). The rehearsal mostly waits: on the disk (image pushes
and pulls, apt on its hosts) and on its hosts' services, and keeps about half a core busy
(`vmstat` over its dev layout: 27 % of the machine's CPU, 28 % I/O wait, 42 % idle). The other
layers mostly use CPU. Side by side, the run takes about as long as the longer of the two (73 min
in a fresh-clone CI run: the rehearsal 69, the other layers 63).

What the two processes share, and how:

* The private Docker engine: started here before either (``docker_engine.start``, which each
  process's ``docker`` fixture then finds running and leaves alone), so that neither stops it
  while the other still uses it; pruned and stopped here at the end, as the fixture would. Where
  ``dockerd`` is installed but will not start here, the two run one after the other: each would
  otherwise try to start it on the same data root.
* The project's images: each process builds them under its own tag (CEPAGE_TEST_IMAGE_TAG, read
  by tests/docker/fixtures.py), so that neither replaces an image the other is pushing or
  running. The layer cache is the engine's: the dependency layers are cache hits, the model's
  layers are built by each (each process trains its own).
* pytest's cache: the rehearsal's process runs without it (``-p no:cacheprovider``), so that
  `pytest --lf` after `make test` sees the other layers' failures.

The rehearsal's output goes to a log file (its path is printed first) and is printed whole when
both are done, then one line with both exit statuses; the run fails if either fails. Ctrl-C
reaches both processes (same process group) and each tears down what it started. Each layer still
runs alone: `make rehearse`, `make test-docker`, ... Usage (what `make test` runs)::

    python -m tests.tools.suite [PYTEST]
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

if not __package__:  # run as a file: import `tests.tools` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from tests.tools import base_image, docker_engine

ROOT = Path(__file__).resolve().parents[2]
BESIDE = "tests/rehearsal"
IMAGE_TAG_VARIABLE = "CEPAGE_TEST_IMAGE_TAG"  # read by tests/docker/fixtures.py
# The rehearsal's images are tagged apart from the other layers' (the fixture's default).
BESIDE_IMAGE_TAG = "rehearsal"


@dataclass
class Signals:
    interrupted: bool = False
    """Whether a Ctrl-C came while the children ran."""


@contextmanager
def children_handle_signals(children: list[subprocess.Popen[bytes]]) -> Iterator[Signals]:
    """While the children run: Ctrl-C (SIGINT, sent by the terminal to the whole process group)
    is theirs to handle, so this process waits for their teardowns instead of dying first; a
    SIGTERM sent to this process alone (a CI job's timeout) is passed on to them."""
    state = Signals()

    def note(signum: int, frame: FrameType | None) -> None:
        del signum, frame  # a handler, not SIG_IGN: exec resets it in the children
        state.interrupted = True

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, note),
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
    }
    try:
        yield state
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_beside(
    main: Sequence[str],
    beside: Sequence[str],
    log: Path,
    main_env: Mapping[str, str],
    beside_env: Mapping[str, str],
) -> int:
    """Run ``beside`` with its output in ``log`` while ``main`` runs in the foreground, then print
    ``log`` and both statuses. The exit status is main's, or beside's when main's is 0."""
    print(f"==> {' '.join(beside)} runs beside, its output in {log} (printed at the end)")
    sys.stdout.flush()
    children: list[subprocess.Popen[bytes]] = []
    with log.open("wb") as out, children_handle_signals(children):
        children.append(
            subprocess.Popen(  # nosec B603: the suite's own pytest
                list(beside), stdout=out, stderr=subprocess.STDOUT, env=dict(beside_env), cwd=ROOT
            )
        )
        children.append(subprocess.Popen(list(main), env=dict(main_env), cwd=ROOT))  # nosec B603
        side_status, main_status = (child.wait() for child in children)
    print(f"\n==> {' '.join(beside)}, run beside the above:")
    sys.stdout.flush()
    with log.open("rb") as text:
        shutil.copyfileobj(text, sys.stdout.buffer)
    print(
        f"\n==> exit status: {main_status} for {' '.join(main)} (its summary is above the "
        f"rehearsal's output), {side_status} for {' '.join(beside)}"
    )
    sys.stdout.flush()
    return main_status or side_status


def run_one_after_the_other(
    main: Sequence[str],
    beside: Sequence[str],
    main_env: Mapping[str, str],
    beside_env: Mapping[str, str],
) -> int:
    """The fallback where the two processes could not share an engine started here."""
    print("==> the layers run one after the other (no shared Docker engine)")
    sys.stdout.flush()
    statuses = []
    for command, env in ((main, main_env), (beside, beside_env)):
        children: list[subprocess.Popen[bytes]] = []
        with children_handle_signals(children) as signals:
            children.append(subprocess.Popen(list(command), env=dict(env), cwd=ROOT))  # nosec B603
            statuses.append(children[0].wait())
        if signals.interrupted:
            break
    return next((status for status in statuses if status), 0)


def start_engine() -> docker_engine.Engine | None:
    """The engine both processes use, with its base image; None where none can run here (each
    test that needs it then skips, or fails with CI=true, saying why)."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        return None
    engine = None
    try:
        engine = docker_engine.existing() or docker_engine.start()
        base_image.ensure_base_image(engine.env(), docker_engine.CACHE)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"==> no Docker engine for the suite ({exc}): its Docker tests will say why")
        if engine is not None and engine.started_here:
            docker_engine.stop_pid(engine.pid)
        return None
    return engine


def stop_engine(engine: docker_engine.Engine) -> None:
    """What the ``docker`` fixture does at the end of a session that started the engine."""
    if engine.started_here:
        try:
            docker_engine.prune_stale_images(engine.env())
        finally:
            docker_engine.stop_pid(engine.pid)


def commands(
    pytest: str, environ: Mapping[str, str]
) -> tuple[list[str], list[str], dict[str, str], dict[str, str]]:
    """(the other layers' command, the rehearsal's, their environments)."""
    main = [pytest, "tests", f"--ignore={BESIDE}", "--durations=30"]
    beside = [pytest, BESIDE, "--durations=15", "-p", "no:cacheprovider"]
    main_env = {k: v for k, v in environ.items() if k != IMAGE_TAG_VARIABLE}
    return main, beside, main_env, {**environ, IMAGE_TAG_VARIABLE: BESIDE_IMAGE_TAG}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pytest = args[0] if args else str(ROOT / ".venv" / "bin" / "pytest")
    main_cmd, beside_cmd, main_env, beside_env = commands(pytest, os.environ)
    engine = start_engine()
    try:
        if engine is None and shutil.which("dockerd") is not None:
            return run_one_after_the_other(main_cmd, beside_cmd, main_env, beside_env)
        descriptor, name = tempfile.mkstemp(prefix="cepage-rehearsal-", suffix=".log")
        os.close(descriptor)
        log = Path(name)
        status = run_beside(main_cmd, beside_cmd, log, main_env, beside_env)
        log.unlink()  # printed whole above
        return status
    finally:
        if engine is not None:
            stop_engine(engine)


if __name__ == "__main__":
    sys.exit(main())
