"""`make test`: the rehearsal beside the other layers, in two pytest processes.

Why: run one after the other, the layers took ~90 min on 2 cores, CI's whole limit. The
rehearsal (tests/rehearsal, ~40 min) mostly waits: on the disk (image pushes and pulls, apt on its
hosts) and on its hosts' services, and keeps about half a core busy (`vmstat`: 27 % of the
machine's CPU, 28 % I/O wait, 42 % idle over the dev layout). The other layers (~45 min) mostly
use CPU. Side by side, the run takes about as long as the longer of the two.

What the two processes share, and how:

* The private Docker engine: started here before either (``docker_engine.start``, which each
  process's ``docker`` fixture then finds running and leaves alone), so that neither stops it
  while the other still uses it; pruned and stopped here at the end, as the fixture would.
* The project's images: each process builds them under its own tag (CEPAGE_TEST_IMAGE_TAG, read
  by tests/docker/fixtures.py), so that neither replaces an image the other is pushing or
  running. The layer cache is the engine's, so the second build is mostly cache hits.

The rehearsal's output goes to a log file (its path is printed first) and is printed whole when
both are done; the run fails if either fails. Each layer still runs alone: `make rehearse`,
`make test-docker`, ... Usage (what `make test` runs)::

    python -m tests.tools.suite [PYTEST]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

if not __package__:  # run as a file: import `tests.tools` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from tests.tools import base_image, docker_engine

ROOT = Path(__file__).resolve().parents[2]
BESIDE = "tests/rehearsal"
# The rehearsal's images are tagged apart from the Docker layer's "test" (tests/docker/fixtures.py).
BESIDE_IMAGE_TAG = "rehearsal"


def run_beside(
    main: Sequence[str],
    beside: Sequence[str],
    log: Path,
    beside_env: Mapping[str, str],
) -> int:
    """Run ``beside`` with its output in ``log`` while ``main`` runs in the foreground, then print
    ``log``. The exit status is main's, or beside's when main's is 0."""
    print(f"==> {' '.join(beside)} runs beside, its output in {log} (printed at the end)")
    sys.stdout.flush()
    with log.open("wb") as out:
        side = subprocess.Popen(  # nosec B603: the suite's own pytest
            list(beside), stdout=out, stderr=subprocess.STDOUT, env=dict(beside_env), cwd=ROOT
        )
        try:
            main_run = subprocess.run(list(main), cwd=ROOT, check=False)  # nosec B603: the same
            main_status = main_run.returncode
        finally:
            # A Ctrl-C reaches both (same process group): wait for the rehearsal's teardown.
            side_status = side.wait()
    print(f"\n==> {' '.join(beside)}, run beside the above (exit status {side_status}):")
    sys.stdout.flush()
    with log.open("rb") as text:
        shutil.copyfileobj(text, sys.stdout.buffer)
    sys.stdout.flush()
    return main_status or side_status


def start_engine() -> docker_engine.Engine | None:
    """The engine both processes use, with its base image; None where none can run (each test
    that needs it then skips or fails with CI=true, saying why)."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        return None
    try:
        engine = docker_engine.existing() or docker_engine.start()
        base_image.ensure_base_image(engine.env(), docker_engine.CACHE)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"==> no Docker engine for the suite ({exc}): its Docker tests will say why")
        return None
    return engine


def stop_engine(engine: docker_engine.Engine) -> None:
    """What the ``docker`` fixture does at the end of a session that started the engine."""
    if engine.started_here:
        docker_engine.prune_stale_images(engine.env())
        docker_engine.stop_pid(engine.pid)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pytest = args[0] if args else str(ROOT / ".venv" / "bin" / "pytest")
    engine = start_engine()
    log = Path(tempfile.mkstemp(prefix="cepage-rehearsal-", suffix=".log")[1])
    try:
        return run_beside(
            [pytest, "tests", f"--ignore={BESIDE}", "--durations=30"],
            [pytest, BESIDE, "--durations=15"],
            log,
            {**os.environ, "CEPAGE_TEST_IMAGE_TAG": BESIDE_IMAGE_TAG},
        )
    finally:
        if engine is not None:
            stop_engine(engine)


if __name__ == "__main__":
    sys.exit(main())
