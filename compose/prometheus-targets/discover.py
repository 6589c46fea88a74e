"""Keep Prometheus' file_sd targets in step with the compose stack's service replicas.

Prometheus reads its targets from ``targets/*.json`` (file_sd), the interface shared by the local
stack, the compose stack and Ansible (which writes the instances' private IPs). In compose, the
model service may run several replicas behind one DNS name: scraping ``service:3000`` would reach
one replica at a time and mix their counters. This sidecar resolves the name to every replica's
address, every few seconds, and writes one target per replica; Prometheus notices the file change
by itself. The other (static) target files are copied as they are.

Where the service runs on other hosts (Ansible's multi-instance layout), Ansible writes a static
``service.json`` with their private addresses beside the others: then that file is used as it
is and no name is resolved.

Standard library only, so it runs in the plain ``python:3.11-slim`` image::

    python3 discover.py --static /static --out /targets --name service --port 3000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

TARGET_FILE = "service.json"
LABELS = {"service": "cepage"}


def resolve(name: str, port: int) -> list[str]:
    """Every IPv4 address the name resolves to (Docker's DNS answers one per replica), sorted."""
    infos = socket.getaddrinfo(name, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos}, key=socket.inet_aton)


def write_json(path: Path, content: Any) -> bool:
    """Write atomically (Prometheus must never read half a file); False when unchanged."""
    text = json.dumps(content, indent=1) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    partial = path.with_suffix(".tmp")
    partial.write_text(text)
    os.replace(partial, path)
    return True


def copy_static(static: Path, out: Path) -> bool:
    """Copy the static targets; True when they include the service's own (no discovery then)."""
    for source in sorted(static.glob("*.json")):
        shutil.copyfile(source, out / source.name)
    return (static / TARGET_FILE).exists()


def refresh(out: Path, name: str, port: int) -> None:
    """One round: the replicas' targets, or, when the name does not resolve, keep what was there."""
    path = out / TARGET_FILE
    try:
        addresses = resolve(name, port)
    except OSError as exc:  # no replica running yet, or DNS briefly unavailable
        print(f"discover: {name} does not resolve ({exc}); targets unchanged", flush=True)
        if not path.exists():
            write_json(path, [])
        return
    targets = [f"{address}:{port}" for address in addresses]
    if write_json(path, [{"targets": targets, "labels": LABELS}]):
        print(f"discover: {name} -> {', '.join(targets)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--static", type=Path, required=True, help="directory of static targets")
    parser.add_argument("--out", type=Path, required=True, help="directory Prometheus reads")
    parser.add_argument("--name", default="service", help="DNS name of the service replicas")
    parser.add_argument("--port", type=int, required=True, help="the service's port")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between rounds")
    parser.add_argument("--once", action="store_true", help="one round, then exit")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if copy_static(args.static, args.out):
        print(f"discover: static {TARGET_FILE} given; not resolving {args.name}", flush=True)
        if args.once:
            return 0
        while True:  # stay up: compose's healthcheck and depends_on expect a running sidecar
            time.sleep(3600)
    while True:
        refresh(args.out, args.name, args.port)
        if args.once:
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
