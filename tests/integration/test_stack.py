"""`cepage up`: the three services come up, answer, and all stop on Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.integration.test_doc_commands import find_block, run_block
from tests.support.procs import (
    BIN,
    ROOT,
    ports_below_the_ephemeral_range,
    require,
    stack_env,
)

pytestmark = pytest.mark.integration


def start_stack(home: Path, ports: dict[str, int]) -> tuple[subprocess.Popen[str], list[str]]:
    env = stack_env(
        home, **{f"CEPAGE_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    )
    proc = subprocess.Popen(
        [str(BIN / "cepage"), "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 240
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops" in line:
            return proc, lines
    proc.kill()
    raise AssertionError("cepage up did not come up:\n" + "".join(lines))


def stop_stack(proc: subprocess.Popen[str]) -> tuple[int, list[int]]:
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    time.sleep(0.5)
    alive = [
        pid
        for pid in children
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]
    return code, alive


def check_local_monitoring(ports: dict[str, int]) -> None:
    """Prometheus (when installed) scrapes the local service with the repo's rules loaded."""
    require(shutil.which("prometheus") is not None, "prometheus is not installed")
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    expected = {"cepage-service": "up", "node": "up", "prometheus": "up", "alertmanager": "up"}
    deadline = time.monotonic() + 60  # first scrapes are spread over the 15 s interval
    health: dict[str, str] = {}
    while time.monotonic() < deadline and health != expected:
        time.sleep(1)
        targets = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()
        health = {t["labels"]["job"]: t["health"] for t in targets["data"]["activeTargets"]}
    assert health == expected
    groups = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {g["name"] for g in groups} >= {"cepage-service.rules", "cepage-quality.alerts"}


def check_install_walkthrough(home: Path, ports: dict[str, int]) -> None:
    """docs/install.md's "Try it" block, as written, against this stack: a promoted retrain
    that the running API switches to, then a rejected one (exit 3) that changes nothing."""
    block = find_block("docs/install.md", "curl -s http://127.0.0.1:3000/metadata")
    env = stack_env(home, **{f"CEPAGE_{k.upper()}_PORT": str(v) for k, v in ports.items()})
    done = run_block(block, {"127.0.0.1:3000": f"127.0.0.1:{ports['api']}"}, env)
    assert done.returncode == 0, done.stderr
    assert '"features"' in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "3", done.stdout[-2000:]
    api = f"http://127.0.0.1:{ports['api']}/metadata"
    deadline = time.monotonic() + 60  # the service polls the store every few seconds
    while requests.get(api, timeout=5).json()["version"] != "2":
        assert time.monotonic() < deadline, "the API did not switch to the promoted version 2"
        time.sleep(1)


def test_up_serves_the_three_urls_and_stops_cleanly(tmp_path: Path) -> None:
    names = ("mlflow", "api", "ui", "prometheus", "alertmanager", "node_exporter")
    # Chosen before a model is trained: ports no outgoing connection can take meanwhile.
    ports = dict(zip(names, ports_below_the_ephemeral_range(len(names)), strict=True))
    proc, lines = start_stack(tmp_path, ports)
    output = "".join(lines)
    try:
        assert "No served model yet: training the default model first." in output
        assert f"http://127.0.0.1:{ports['ui']}" in output
        assert requests.get(f"http://127.0.0.1:{ports['ui']}/_stcore/health", timeout=5).ok
        assert requests.get(f"http://127.0.0.1:{ports['api']}/readyz", timeout=5).ok
        mlflow = requests.get(
            f"http://127.0.0.1:{ports['mlflow']}/api/2.0/mlflow/registered-models/get",
            params={"name": "cepage-classifier"},
            timeout=10,
        ).json()
        aliases = {a["alias"] for a in mlflow["registered_model"]["aliases"]}
        assert aliases == {"champion"}
        meta = requests.get(f"http://127.0.0.1:{ports['api']}/metadata", timeout=5).json()
        assert meta["version"] == "1"
        check_local_monitoring(ports)
        check_install_walkthrough(tmp_path, ports)
    finally:
        code, alive = stop_stack(proc)
    assert code == 0
    assert alive == [], f"processes left running after Ctrl-C: {alive}"

    # A second start reuses the served model: no training.
    again, lines = start_stack(tmp_path, ports)
    code, alive = stop_stack(again)
    assert "training" not in "".join(lines)
    assert code == 0 and alive == []


def test_up_refuses_a_busy_port_with_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = stack_env(tmp_path, CEPAGE_API_PORT=str(port))
        done = subprocess.run(
            [str(BIN / "cepage"), "up"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"Port {port} (api) is already in use" in done.stdout
    assert not (tmp_path / "mlflow.db").exists()
