"""Where a server's cold start goes: process start -> first prediction, split into its parts.

``python -m bench.cold_start`` (``make bench-cold-start``) starts each server several times, on a
home given with ``--home`` (``make bench``'s, kept with ``--keep-home``) or a fresh one trained by
the real CLI, and splits each start into what can be seen from outside the processes:

- ``bentoml serve`` (cepage, and the plain BentoML service of bench/plain_bento.py): the
  **arbiter's part**, from the command to the moment it starts its worker (an interpreter that
  imports bentoml and the service module, then sets up circus and the sockets), then the
  **worker's part**, from the worker's process start to the first answered prediction (a new
  interpreter started by circus: the same imports again, the model's load, the first request);
- uvicorn + the minimal FastAPI app, and the floor (``bench.floor``): one process each.

Beside them, each in a fresh interpreter on the same machine: the interpreter alone, the import
of each service module, and the model's load and first predict once the service is imported
(then once more with scikit-learn imported first: what of the load is that import). The figures
are medians of ``--rounds`` starts; the servers' starts alternate, so a noisy moment weighs on
each alike. Process start times are read to the clock tick (bench/clock.py), not from psutil's
epoch times, which are early by up to a second. It is a profile, not a pass/fail check
(docs/performance.md, cold start).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import clock
from bench.cpu import wait_for_quiet
from bench.floor import median_record
from bench.report import describe_machine, write_between_markers
from bench.servers import SERVERS, ServerSpec, predict_once
from stack.home import BIN, HomeError, has_model, prepare_home, stack_env
from stack.processes import ROOT, free_port, process_tree, start, stop_group

MARKERS = "bench-cold-start"
HEADING = "Latest run of `make bench-cold-start`"
COMMAND = "python -m bench.cold_start --write"
WORKER_MODULE = "_bentoml_impl.worker.service"  # what circus runs for each worker of a service
SERVER_KEYS = ("cepage", "bentoml-plain", "fastapi")
POLL_S = 0.02
START_TIMEOUT_S = 120.0
QUIET_WAIT_S = 30.0
LOAD = "model load + first predict, service imported"
# scikit-learn's own import, which imports SciPy's stats (sklearn.utils.fixes).
LIBRARIES = "import scipy.stats, sklearn.base"
LOAD_AFTER_LIBRARIES = f"the same, after `{LIBRARIES}`"
FLOOR = "floor: interpreter start → first prediction"

# What each fresh interpreter is timed doing (its own clock, from the first line of the script).
PROBES: dict[str, str] = {
    "import bentoml": "import bentoml",
    "import bento.service (cepage)": "import bento.service",
    "import bench.plain_bento": "import bench.plain_bento",
    "import bench.fastapi_app": "import bench.fastapi_app",
}
# The model's load, timed after the service's import (and ``first``'s: str.format, so the
# script's own braces are doubled).
LOAD_SCRIPT = """
import time, json
import bento.service
from bento.production_log import keep_arrow_unloaded
keep_arrow_unloaded()  # as a worker of the default service (no prediction log) loads it
{first}
from bento.loader import latest_tag, load_bundle
from bento.predictor import Predictor
from bento.settings import model_name
began = time.perf_counter()
bundle = load_bundle(latest_tag(model_name()))
predictor = Predictor(bundle)
predictor.predict([{{f["name"]: float(f["median"]) for f in bundle.schema["features"]}}])
print(json.dumps(time.perf_counter() - began))
"""


class ColdStartError(RuntimeError):
    """A server did not answer, or a probe failed; the message says which."""


@dataclass
class Start:
    """One start of one server: seconds from the command."""

    total_s: float
    worker_s: float | None = None
    """When its worker process started (None: a single-process server)."""


@dataclass
class ServerProfile:
    key: str
    title: str
    starts: list[Start] = field(default_factory=list)

    def median(self, read: Callable[[Start], float | None]) -> float | None:
        values = [v for v in (read(s) for s in self.starts) if v is not None]
        return statistics.median(values) if values else None


def say(text: str) -> None:
    """Progress on stderr (the result goes to stdout)."""
    print(f"[cold-start] {text}", file=sys.stderr, flush=True)


def interpreter_seconds(env: dict[str, str]) -> float:
    """Wall time of ``python -c pass``: the interpreter and site alone."""
    began = time.perf_counter()
    subprocess.run([str(BIN / "python"), "-c", "pass"], env=env, cwd=ROOT, check=True)
    return time.perf_counter() - began


def probe_seconds(statement: str, env: dict[str, str]) -> float:
    """Seconds a fresh interpreter spends on ``statement`` (its own clock: start-up excluded)."""
    script = (
        f"import time\nbegan = time.perf_counter()\n{statement}\nprint(time.perf_counter() - began)"
    )
    return float(_python(script, env))


def load_seconds(env: dict[str, str], first: str = "") -> float:
    """Seconds to load the model and score one record, the service's modules (and ``first``)
    already imported."""
    return float(json.loads(_python(LOAD_SCRIPT.format(first=first), env)))


def _python(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(BIN / "python"), "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise ColdStartError(f"probe failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return lines[-1]


def floor_seconds(env: dict[str, str]) -> float:
    """The floor's cold start: interpreter start -> first in-process prediction."""
    out = _python("from bench.floor import measure\nimport json\n"
                  "print(json.dumps(measure(0.01, 1)['cold_start_s']))", env)  # fmt: skip
    return float(json.loads(out))


def worker_started(pid: int) -> float | None:
    """When the BentoML worker under ``pid`` started (bench/clock.py's clock), once there is one."""
    import psutil

    for proc in process_tree(pid):
        try:
            if WORKER_MODULE in proc.cmdline():
                return clock.started(proc.pid)
        except (psutil.Error, ProcessLookupError):  # gone, or not ours to read: not the worker
            continue
    return None


def start_once(spec: ServerSpec, home: Path, record: dict[str, float], log: Path) -> Start:
    """Start ``spec`` once, time it to its first prediction, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{spec.path}"
    body = spec.body(record)
    env = stack_env(home, **spec.env)
    argv = spec.argv(port)
    # Only `bentoml serve` has a worker to find: walking the process tree costs CPU.
    has_worker = Path(argv[0]).name == "bentoml"
    began = clock.now()
    proc = start(argv, env=env, log=log)
    worker: float | None = None
    try:
        while clock.now() - began < START_TIMEOUT_S:
            if proc.poll() is not None:
                raise ColdStartError(f"{spec.key} exited ({proc.returncode}); log: {log}")
            if has_worker and worker is None:
                worker = worker_started(proc.pid)
            if predict_once(url, body):
                total = clock.now() - began
                if has_worker and worker is None:  # answered between two looks
                    worker = worker_started(proc.pid)
                return Start(total, None if worker is None else worker - began)
            time.sleep(POLL_S)
        raise ColdStartError(
            f"{spec.key}: no prediction within {START_TIMEOUT_S:.0f} s; log: {log}"
        )
    finally:
        stop_group(proc)


def profile(home: Path, rounds: int) -> tuple[list[ServerProfile], dict[str, float]]:
    """Every server started ``rounds`` times (alternating), and the reference probes."""
    env = stack_env(home)
    record = median_record(_schema(env))
    servers = [ServerProfile(key, SERVERS[key].title) for key in SERVER_KEYS]
    references: dict[str, list[float]] = {"interpreter alone (python -c pass)": []}
    references.update({label: [] for label in PROBES})
    references[LOAD] = []
    references[LOAD_AFTER_LIBRARIES] = []
    references[FLOOR] = []
    for round_ in range(rounds):
        for server in servers:
            wait_for_quiet(QUIET_WAIT_S)
            start_ = start_once(SERVERS[server.key], home, record, home / f"cold-{server.key}.log")
            server.starts.append(start_)
            say(f"round {round_ + 1}: {server.key} {start_.total_s:.2f} s")
        wait_for_quiet(QUIET_WAIT_S)
        references["interpreter alone (python -c pass)"].append(interpreter_seconds(env))
        for label, statement in PROBES.items():
            references[label].append(probe_seconds(statement, env))
        references[LOAD].append(load_seconds(env))
        references[LOAD_AFTER_LIBRARIES].append(load_seconds(env, LIBRARIES))
        references[FLOOR].append(floor_seconds(env))
    return servers, {k: statistics.median(v) for k, v in references.items()}


def _schema(env: dict[str, str]) -> dict[str, object]:
    script = (
        "import json\nfrom bento.loader import latest_tag, load_bundle\n"
        "from bento.settings import model_name\n"
        "print(json.dumps(load_bundle(latest_tag(model_name())).schema))"
    )
    schema: dict[str, object] = json.loads(_python(script, env))
    return schema


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render(servers: Sequence[ServerProfile], references: dict[str, float], rounds: int) -> str:
    """The Markdown block: the servers' split, then the reference probes."""
    machine = describe_machine()
    lines = [
        "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()),
        "",
        f"Median of {rounds} starts per server, alternating; seconds. Each column is its own "
        "median, so the two parts need not add up to the total exactly.",
        "",
        "| server | command → worker process (arbiter) | worker process → first prediction | "
        "command → first prediction |",
        "|---|--:|--:|--:|",
    ]
    for server in servers:
        worker = server.median(lambda s: s.worker_s)
        total = server.median(lambda s: s.total_s)
        after = server.median(lambda s: None if s.worker_s is None else s.total_s - s.worker_s)
        lines.append(f"| {server.title} | {_s(worker)} | {_s(after)} | {_s(total)} |")
    lines += ["", "| in a fresh interpreter | seconds |", "|---|--:|"]
    lines += [f"| {label} | {_s(value)} |" for label, value in references.items()]
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        type=Path,
        help="A cepage home with a packaged model (default: a fresh one, trained by the real "
        "CLI, removed after).",
    )
    parser.add_argument(
        "--rounds", type=_positive, default=5, help="Starts per server (default 5)."
    )
    parser.add_argument("--write", type=Path, help="Write the block between its markers there.")
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="cepage-cold-"))
    try:
        if not has_model(home):
            say(f"training, promoting and packaging a model in {home} (real CLI)")
            prepare_home(home)
        servers, references = profile(home, args.rounds)
    except (ColdStartError, HomeError, OSError, subprocess.SubprocessError) as exc:
        print(f"cold-start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cold-start: interrupted; every server it started has been stopped.", file=sys.stderr)
        return 130
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    block = render(servers, references, args.rounds)
    print(block)
    if args.write:
        write_between_markers(args.write, MARKERS, block, HEADING, COMMAND)
        say(f"wrote the results into {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
