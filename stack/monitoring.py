"""Prometheus, Alertmanager and node_exporter for the local stack, when they are installed.

They run as plain processes with the repo's configuration (``monitoring/prometheus/``,
``monitoring/alertmanager/``): only the scrape targets are local. With no Docker DNS to find them,
they are file_sd files under ``.cepage/prometheus/targets/``, in the layout Ansible's template also
writes (``monitoring/prometheus/targets/README.md``); prometheus.yml says why each job has both.
Missing binaries are not an error: the stack runs without monitoring and says how to get it.
Beside Alertmanager runs the retrain trigger (``stack/retrain_trigger.py``, ``cepage trigger
serve``), and Alertmanager's configuration points the drift and feedback-accuracy alerts at it:
a drift alert retrains the local model, with a cooldown (``CEPAGE_TRIGGER_MODE=off`` leaves it
out).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from stack.retrain_trigger import WEBHOOK_PATH, TriggerSettings, load_trigger_settings
from train.settings import Settings

# The repository's monitoring configuration, relative to the project root.
PROMETHEUS_CONFIG = Path("monitoring", "prometheus")
ALERTMANAGER_RENDERER = Path("monitoring", "alertmanager", "render.py")

INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager prometheus-node-exporter"
PROMETHEUS_RETENTION = "7d"

# (name, argv, port, health path) of one monitoring process.
Planned = tuple[str, list[str], int, str]


def find_binary(*names: str) -> str | None:
    """The first of ``names`` on PATH (Debian prefixes some with `prometheus-`)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def address(settings: Settings, port: int) -> str:
    return f"{settings.host}:{port}"


def monitoring_plan(settings: Settings) -> list[Planned]:
    """Prometheus, Alertmanager and node_exporter, for those installed on this machine."""
    home = settings.home
    planned: list[Planned] = []
    node = find_binary("node_exporter", "prometheus-node-exporter")
    if node:
        port = settings.node_exporter_port
        argv = [node, f"--web.listen-address={address(settings, port)}"]
        planned.append(("node_exporter", argv, port, "/metrics"))
    manager = find_binary("alertmanager", "prometheus-alertmanager")
    if manager:
        port = settings.alertmanager_port
        argv = [
            manager,
            f"--config.file={home / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={home / 'alertmanager' / 'data'}",
            f"--web.listen-address={address(settings, port)}",
            "--cluster.listen-address=",  # a single local instance: no gossip port
        ]
        planned.append(("alertmanager", argv, port, "/-/ready"))
        trigger = trigger_settings(settings)
        if trigger is not None:
            # The `cepage` command of this environment (stack does not reach into cli/).
            argv = [str(Path(sys.executable).with_name("cepage")), "trigger", "serve"]
            argv += ["--host", settings.host, "--port", str(trigger.port)]
            planned.append(("trigger", argv, trigger.port, "/healthz"))
    prometheus = find_binary("prometheus")
    if prometheus:
        port = settings.prometheus_port
        argv = [
            prometheus,
            f"--config.file={home / 'prometheus' / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'prometheus' / 'data'}",
            f"--storage.tsdb.retention.time={PROMETHEUS_RETENTION}",
            f"--web.listen-address={address(settings, port)}",
        ]
        planned.append(("prometheus", argv, port, "/-/ready"))
    return planned


def trigger_settings(settings: Settings) -> TriggerSettings | None:
    """The retrain trigger's settings, or None when it is off or its settings are wrong (said)."""
    try:
        trigger = load_trigger_settings(settings.home)
    except ValueError as exc:
        print(f"retrain trigger left out: {exc}", file=sys.stderr)
        return None
    return None if trigger.mode == "off" else trigger


def trigger_env(settings: Settings, port: int) -> dict[str, str]:
    """What Alertmanager's renderer needs to call the local trigger (a user's own URL wins)."""
    extra = {"CEPAGE_ALERT_RETRAIN_WEBHOOK_URL": f"http://{address(settings, port)}{WEBHOOK_PATH}"}
    trigger = trigger_settings(settings)
    if trigger is not None and trigger.token:
        token_file = settings.home / "alertmanager" / "retrain-token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(trigger.token)
        extra["CEPAGE_ALERT_RETRAIN_WEBHOOK_TOKEN_FILE"] = str(token_file)
    return {k: v for k, v in extra.items() if not os.environ.get(k)}


def prepare_monitoring(settings: Settings, project: Path, ports: dict[str, int]) -> None:
    """Write Prometheus' config and targets and Alertmanager's config for the planned processes.

    ``ports`` maps every planned process of the stack to its port.
    """
    if "alertmanager" in ports:
        extra = trigger_env(settings, ports["trigger"]) if "trigger" in ports else {}
        render_alertmanager(settings, project, extra)
    if "prometheus" in ports:

        def at(name: str) -> list[str]:
            return [address(settings, ports[name])] if name in ports else []

        targets = {
            "service": at("api"),
            "node": at("node_exporter"),
            "mlflow": [],  # MLflow's /metrics needs prometheus-flask-exporter; off locally
            "prometheus": at("prometheus"),
            "alertmanager": at("alertmanager"),
        }
        prepare_prometheus(settings, project, targets)


def write_targets(directory: Path, targets: dict[str, list[str]]) -> None:
    """One file_sd file per job, ``[{"targets": [...]}]``; ``[]`` keeps the job defined but idle."""
    directory.mkdir(parents=True, exist_ok=True)
    for job, addresses in targets.items():
        content = [{"targets": addresses}] if addresses else []
        (directory / f"{job}.json").write_text(json.dumps(content, indent=2) + "\n")


def prepare_prometheus(settings: Settings, project: Path, targets: dict[str, list[str]]) -> Path:
    """Lay out .cepage/prometheus: the repo's prometheus.yml, a link to its rules, our targets."""
    root = settings.home / "prometheus"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project / PROMETHEUS_CONFIG / "prometheus.yml", root / "prometheus.yml")
    rules = root / "rules"
    if rules.is_symlink() or rules.is_file():
        rules.unlink()
    elif rules.is_dir():
        shutil.rmtree(rules)
    rules.symlink_to(project / PROMETHEUS_CONFIG / "rules", target_is_directory=True)
    write_targets(root / "targets", targets)
    return root / "prometheus.yml"


def render_alertmanager(
    settings: Settings, project: Path, extra_env: dict[str, str] | None = None
) -> Path:
    """Render alertmanager.yml from the environment (and ``extra_env``) with the repo's renderer."""
    out = settings.home / "alertmanager" / "alertmanager.yml"
    subprocess.run(
        [sys.executable, str(project / ALERTMANAGER_RENDERER), "--out", str(out)],
        check=True,
        env={**os.environ, **(extra_env or {})},
    )
    return out
