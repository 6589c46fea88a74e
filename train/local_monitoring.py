"""Prometheus, Alertmanager and node_exporter for the local stack, when they are installed.

They run as plain processes with the repo's configuration (``prometheus/``, ``alertmanager/``):
only the scrape targets are local, written as file_sd JSON under ``.cepage/prometheus/targets/``.
Missing binaries are not an error: the stack runs without monitoring and says how to get it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from train.settings import Settings

INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager prometheus-node-exporter"


def find_binary(*names: str) -> str | None:
    """The first of ``names`` on PATH (Debian prefixes some with `prometheus-`)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def write_targets(directory: Path, targets: dict[str, list[str]]) -> None:
    """One file_sd JSON file per job; an empty list keeps the job defined but idle."""
    directory.mkdir(parents=True, exist_ok=True)
    for job, addresses in targets.items():
        content = [{"targets": addresses, "labels": {}}] if addresses else []
        (directory / f"{job}.json").write_text(json.dumps(content, indent=2) + "\n")


def prepare_prometheus(settings: Settings, project: Path, targets: dict[str, list[str]]) -> Path:
    """Lay out .cepage/prometheus: the repo's prometheus.yml, a link to its rules, our targets."""
    root = settings.home / "prometheus"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project / "prometheus" / "prometheus.yml", root / "prometheus.yml")
    rules = root / "rules"
    if rules.is_symlink() or rules.is_file():
        rules.unlink()
    elif rules.is_dir():
        shutil.rmtree(rules)
    rules.symlink_to(project / "prometheus" / "rules", target_is_directory=True)
    write_targets(root / "targets", targets)
    return root / "prometheus.yml"


def render_alertmanager(settings: Settings, project: Path) -> Path:
    """Render alertmanager.yml from the environment with the repo's renderer."""
    out = settings.home / "alertmanager" / "alertmanager.yml"
    subprocess.run(
        [sys.executable, str(project / "alertmanager" / "render.py"), "--out", str(out)],
        check=True,
        env=dict(os.environ),
    )
    return out


def address(settings: Settings, port: int) -> str:
    return f"{settings.host}:{port}"
