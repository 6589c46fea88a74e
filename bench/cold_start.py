"""Where a server's cold start goes: process start -> first prediction, split into its parts.

``python -m bench.cold_start`` (``make bench-cold-start``) starts each server several times on the
home of ``make bench`` (or a fresh one, trained by the real CLI) and splits each start into what
can be seen from outside the processes:

- ``bentoml serve`` (cepage, and the plain BentoML service of bench/plain_bento.py): the
  **arbiter's part**, from the command to the moment it starts its worker (an interpreter that
  imports bentoml and the service module, then sets up circus and the sockets), then the
  **worker's part**, from the worker's process start to the first answered prediction (a new
  interpreter started by circus: the same imports again, the model's load, the first request);
- uvicorn + the minimal FastAPI app, and the floor (``bench.floor``): one process each.

Beside them, each in a fresh interpreter on the same machine: the interpreter alone, the import
of each service module, and the model's load and first predict once the service is imported. The
figures are medians of ``--rounds`` starts; the servers' starts alternate, so a noisy moment
weighs on each alike. It is a profile, not a pass/fail check (docs/performance.md, cold start).
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

# What each fresh interpreter is timed doing (its own clock, from the first line of the script).
PROBES: dict[str, str] = {
    "import bentoml": "import bentoml",
    "import bento.service (cepage)": "import bento.service",
    "import bench.plain_bento": "import bench.plain_bento",
    "import bench.fastapi_app": "import bench.fastapi_app",
}
LOAD_SCRIPT = """
import time, json
import bento.service
from bento.loader import latest_tag, load_bundle
from bento.predictor import Predictor
from bento.settings import model_name
began = time.perf_counter()
bundle = load_bundle(latest_tag(model_name()))
predictor = Predictor(bundle)
predictor.predict([{f["name"]: float(f["median"]) for f in bundle.schema["features"]}])
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


def load_seconds(env: dict[str, str]) -> float:
    """Seconds to load the model and score one record, the service's modules already imported."""
    return float(json.loads(_python(LOAD_SCRIPT, env)))


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
    if done.returncode != 0:
        raise ColdStartError(f"probe failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def floor_seconds(env: dict[str, str]) -> float:
    """The floor's cold start: interpreter start -> first in-process prediction."""
    out = _python("from bench.floor import measure\nimport json\n"
                  "print(json.dumps(measure(0.01, 1)['cold_start_s']))", env)  # fmt: skip
    return float(json.loads(out))


def worker_started(pid: int) -> float | None:
    """The start time (epoch) of the BentoML worker under ``pid``, once there is one."""
    import psutil

    for proc in process_tree(pid):
        try:
            if WORKER_MODULE in proc.cmdline():
                return float(proc.create_time())
        except psutil.Error:  # gone, or not ours to read: not the worker
            continue
    return None


def start_once(spec: ServerSpec, home: Path, record: dict[str, float], log: Path) -> Start:
    """Start ``spec`` once, time it to its first prediction, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{spec.path}"
    body = spec.body(record)
    env = stack_env(home, **spec.env)
    began_epoch, began = time.time(), time.monotonic()
    proc = start(spec.argv(port), env=env, log=log)
    worker: float | None = None
    try:
        while time.monotonic() - began < START_TIMEOUT_S:
            if proc.poll() is not None:
                raise ColdStartError(f"{spec.key} exited ({proc.returncode}); log: {log}")
            if worker is None:
                worker = worker_started(proc.pid)
            if predict_once(url, body):
                total = time.monotonic() - began
                return Start(total, None if worker is None else worker - began_epoch)
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
    references["model load + first predict, service imported"] = []
    references["floor: interpreter start -> first prediction"] = []
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
        references["model load + first predict, service imported"].append(load_seconds(env))
        references["floor: interpreter start -> first prediction"].append(floor_seconds(env))
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
        f"Median of {rounds} starts per server, alternating; seconds.",
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        type=Path,
        help="A cepage home with a packaged model (default: a fresh one, trained by the real "
        "CLI, removed after).",
    )
    parser.add_argument("--rounds", type=int, default=5, help="Starts per server (default 5).")
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
