"""Replicas behind the prod reverse proxy, as one server of ``make bench``.

``python -m bench.proxied --port P --replicas N`` starts N ``bentoml serve`` replicas of one
worker each (what compose runs on a service host, ``CEPAGE_SERVICE_REPLICAS``) and, on port P in
front of them, the Caddy of compose/caddy/Dockerfile (tests/tools/caddy.sh builds the same
version and modules, from source) with the API site of compose/caddy/sites/app-on.caddy as the
file has it, but for two things:

- the replicas are given by address (``to 127.0.0.1:PORT ...``): compose's proxy looks them up in
  Docker's DNS (``dynamic a service 3000``), which a machine without Docker does not have. The
  balancing (``lb_policy``, passive health) is the file's, line for line;
- the snippets the main Caddyfile defines (``import ...``: HTTPS redirect, drain flag, per-client
  rate limit) are left out: the bench is one client address, which the rate limit would stop.

It writes the replicas' ports to ``$CEPAGE_HOME/proxied-P.json`` (the bench reads each one's
request count there) and runs until it is stopped (SIGTERM stops every process it started), or
until one of them exits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.errors import BenchError
from bench.servers import log_tail, private_bentoml_home
from stack.home import BIN
from stack.processes import ROOT, NotReadyError, Supervisor, free_port, wait_ready, wait_until

SITE_FILE = ROOT / "compose" / "caddy" / "sites" / "app-on.caddy"
CADDY_BUILDER = ROOT / "tests" / "tools" / "caddy.sh"
# Every replica within this, together: less than the bench's wait for a first prediction
# (bench.serving.START_TIMEOUT_S, 180 s), so that a replica that never gets ready is reported
# here, with its log, before the bench gives up on the row.
READY_TIMEOUT_S = 150.0
_API_SITE = re.compile(r"^\{\$CEPAGE_SITE_SCHEME\}api\.\S+ \{$")
_DYNAMIC = re.compile(r"^(\s*)dynamic a \S+ \d+( \{)?$")


def ports_file(home: Path, port: int) -> Path:
    """Where the proxied server on ``port`` lists its replicas' ports."""
    return home / f"proxied-{port}.json"


def api_site_block(text: str) -> list[str]:
    """The lines inside the API site's block of app-on.caddy (its braces left out)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _API_SITE.match(line)), None)
    if start is None:
        raise BenchError(f"{SITE_FILE.name}: no API site block ({{$CEPAGE_SITE_SCHEME}}api....)")
    depth = 0
    for end in range(start, len(lines)):
        depth += lines[end].count("{") - lines[end].count("}")
        # Placeholders ({$VAR}, {client_ip}) open and close on one line: only blocks count.
        if depth == 0:
            return lines[start + 1 : end]
    raise BenchError(f"{SITE_FILE.name}: the API site's block is not closed")


def bench_caddyfile(text: str, port: int, upstreams: Sequence[str]) -> str:
    """A Caddyfile serving the API site of ``text`` (app-on.caddy) on ``port`` in plain HTTP, its
    replicas ``upstreams`` given by address instead of ``dynamic a``, its imports left out."""
    body: list[str] = []
    skipping = 0
    replaced = False
    for line in api_site_block(text):
        if skipping:
            skipping += line.count("{") - line.count("}")
            continue
        dynamic = _DYNAMIC.match(line)
        if dynamic:
            body.append(f"{dynamic[1]}to {' '.join(upstreams)}")
            skipping = 1 if dynamic[2] else 0
            replaced = True
        elif not line.strip().startswith("import "):
            body.append(line)
    if not replaced:
        raise BenchError(f"{SITE_FILE.name}: the API site has no `dynamic a NAME PORT` upstream")
    # admin off: several of these may run at once, and none needs the admin endpoint.
    return "\n".join(["{", "\tadmin off", "}", f"http://:{port} {{", *body, "}", ""])


def caddy_binary() -> Path:
    """The proxy's Caddy (tests/tools/caddy.sh builds it once, then reuses its cache)."""
    done = subprocess.run(
        ["bash", str(CADDY_BUILDER)], capture_output=True, text=True, timeout=1800, check=False
    )  # nosec B603 B607: the repository's own builder, fixed arguments
    if done.returncode != 0:
        raise BenchError(
            f"no Caddy for the proxied rows (tests/tools/caddy.sh, `make deps`):\n"
            f"{done.stderr[-2000:]}"
        )
    return Path(done.stdout.strip().splitlines()[-1])


def serve(port: int, replicas: int, work: Path) -> int:
    """Start the replicas and the proxy; return when one of them exits (its exit code)."""
    caddy = caddy_binary()
    home = Path(os.environ["CEPAGE_HOME"])
    shared = Path(os.environ["BENTOML_HOME"])
    ports: list[int] = []
    while len(ports) < replicas:  # distinct, and never the proxy's own port
        candidate = free_port()
        if candidate != port and candidate not in ports:
            ports.append(candidate)
    logs = [work / f"replica{index}-{port}.log" for index in range(replicas)]
    with Supervisor() as sup:
        procs = []
        for index, replica_port in enumerate(ports):
            # Each replica its own metrics directory, as each container has (bench.serving).
            env = {
                **os.environ,
                "CEPAGE_WORKERS": "1",
                "BENTOML_HOME": str(private_bentoml_home(shared, f"replica{index}-{port}")),
            }
            argv = [str(BIN / "bentoml"), "serve", "bento.service:Classifier",
                    "--host", "127.0.0.1", "--port", str(replica_port)]  # fmt: skip
            procs.append(sup.start(argv, env=env, log=logs[index]))
        deadline = time.monotonic() + READY_TIMEOUT_S  # one wait for all of them
        for index, (proc, replica_port) in enumerate(zip(procs, ports, strict=True)):
            url = f"http://127.0.0.1:{replica_port}/readyz"
            left = max(deadline - time.monotonic(), 0.1)
            try:
                wait_ready(url, proc, timeout=left, log=logs[index])
            except NotReadyError as exc:
                print(f"replica {index}: {exc}", file=sys.stderr)
                return 1
        config = work / f"Caddyfile-{port}"
        upstreams = [f"127.0.0.1:{p}" for p in ports]
        config.write_text(bench_caddyfile(SITE_FILE.read_text(), port, upstreams))
        caddy_env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "XDG_DATA_HOME": str(work)}
        argv = [str(caddy), "run", "--config", str(config), "--adapter", "caddyfile"]
        caddy_log = work / f"caddy-{port}.log"
        procs.append(sup.start(argv, env=caddy_env, log=caddy_log))
        ports_file(home, port).write_text(json.dumps(ports))
        wait_until(
            lambda: any(p.poll() is not None for p in procs), timeout=24 * 3600.0, interval=0.5
        )
        stopped = next(i for i, p in enumerate(procs) if p.poll() is not None)
        log = caddy_log if stopped == len(procs) - 1 else logs[stopped]
        code = procs[stopped].returncode
        print(f"{log.name} stopped ({code}):\n{log_tail(log)}", file=sys.stderr)
        return code or 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.proxied``."""
    parser = argparse.ArgumentParser(prog="python -m bench.proxied", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="The proxy's port.")
    parser.add_argument("--replicas", type=int, default=2, help="Replicas behind it (2).")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if not {"CEPAGE_HOME", "BENTOML_HOME"} <= os.environ.keys():
        parser.error(
            "run by make bench (bench/serving.py), which sets CEPAGE_HOME and BENTOML_HOME"
        )
    work = Path(os.environ["CEPAGE_HOME"]) / "proxied"
    work.mkdir(parents=True, exist_ok=True)
    try:
        return serve(args.port, args.replicas, work)
    except KeyboardInterrupt:  # SIGTERM from the bench: the Supervisor has stopped everything
        return 0


if __name__ == "__main__":
    sys.exit(main())
