"""Driving load with wrk: one POST body, N connections (= N concurrent clients), fixed duration.

wrk is a single C process with an event loop: one thread drives hundreds of connections while
using far less CPU than a Python client would, which matters when client and server share two
cores. A Lua ``done`` hook prints the summary as JSON so that nothing depends on wrk's text layout.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRK_INSTALL_HINT = (
    "wrk is not installed: install it with `sudo apt-get install -y wrk` (Debian/Ubuntu) or "
    "`brew install wrk` (macOS), then run `make bench` again."
)
TIMEOUT_S = 5
MARK = "BENCH_JSON "

_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


class LoadError(RuntimeError):
    """wrk could not run or its output could not be read."""


@dataclass(frozen=True)
class LoadResult:
    """One cell: a server at a number of concurrent clients."""

    clients: int
    requests: int
    ok_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int

    @classmethod
    def from_wrk(cls, clients: int, data: dict[str, Any]) -> LoadResult:
        errors = sum(int(data[k]) for k in ("connect", "read", "write", "status", "timeout"))
        seconds = max(int(data["duration_us"]), 1) / 1e6
        ok = max(int(data["requests"]) - int(data["status"]), 0)
        answered = int(data["requests"]) > 0
        return cls(
            clients=clients,
            requests=int(data["requests"]),
            ok_per_s=ok / seconds,
            p50_ms=int(data["p50_us"]) / 1000 if answered else math.nan,
            p99_ms=int(data["p99_us"]) / 1000 if answered else math.nan,
            errors=errors,
        )


def find_wrk() -> str | None:
    """Path of the wrk binary, or None."""
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    """wrk's version line (wrk -v exits 1 after printing it)."""
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk (unknown version)"


def write_script(path: Path, body: str) -> Path:
    """A wrk Lua script that POSTs ``body`` as JSON and prints a JSON summary."""
    if "]==]" in body:
        raise LoadError("The request body cannot be embedded in the wrk script.")
    path.write_text(_LUA.format(body=body, mark=MARK))
    return path


def run_wrk(wrk: str, url: str, script: Path, *, clients: int, duration_s: float) -> LoadResult:
    """Load ``url`` with ``clients`` connections on one wrk thread for ``duration_s`` seconds."""
    proc = start_wrk(wrk, url, script, clients=clients, duration_s=duration_s)
    return finish_wrk(proc, clients, timeout_s=duration_s + 60)


def start_wrk(
    wrk: str, url: str, script: Path, *, clients: int, duration_s: float
) -> subprocess.Popen[str]:
    """wrk started in the background: :func:`finish_wrk` waits for it (or SIGINT ends it early:
    wrk then stops its load and prints its summary all the same)."""
    argv = [
        wrk,
        "-t1",
        f"-c{clients}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={TIMEOUT_S}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_wrk(proc: subprocess.Popen[str], clients: int, *, timeout_s: float) -> LoadResult:
    """The summary of a wrk started by :func:`start_wrk`, once it has exited."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise LoadError(f"wrk did not finish within {timeout_s:.0f} s") from None
    except BaseException:  # interrupted (Ctrl-C, the Supervisor's SIGTERM): no wrk left behind
        proc.kill()
        proc.wait()
        raise
    for line in stdout.splitlines():
        if line.startswith(MARK):
            return LoadResult.from_wrk(clients, json.loads(line.removeprefix(MARK)))
    raise LoadError(f"wrk gave no summary (exit {proc.returncode}): {stderr.strip()[-500:]}")
