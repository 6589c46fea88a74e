"""Prometheus, Alertmanager and Grafana configuration: checked by their own tools."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from stack.monitoring import write_targets
from tests.ansible.conftest import ansible_env, tool
from tests.support.procs import ROOT, free_port, require_binary, running

pytestmark = pytest.mark.monitoring

MONITORING = ROOT / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
GRAFANA = MONITORING / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
EXPECTED_UIDS = {"cepage-service.json": "cepage-service", "cepage-host.json": "cepage-host"}


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_checks_the_config_with_empty_targets(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    (tmp_path / "prometheus.yml").write_text((PROMETHEUS / "prometheus.yml").read_text())
    (tmp_path / "rules").symlink_to(PROMETHEUS / "rules")
    targets = tmp_path / "targets"
    targets.mkdir()
    for job in ("service", "node", "mlflow", "prometheus", "alertmanager"):
        (targets / f"{job}.json").write_text("[]")
    done = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 rule files found" in done.stdout


def dns_lookups(prometheus: str) -> int:
    """How many DNS service-discovery lookups Prometheus has made (answered or failed)."""
    metrics = requests.get(f"{prometheus}/metrics", timeout=5).text
    found = re.search(r"^prometheus_sd_dns_lookups_total (\S+)$", metrics, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def test_outside_docker_only_the_target_files_count(tmp_path: Path) -> None:
    """The local stack's case: the compose names (dns_sd) find nothing, add no failing target,
    and the jobs scrape exactly what their files list."""
    binary = require_binary("prometheus")
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    for job in config["scrape_configs"]:
        job.pop("scrape_interval", None)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "rules").symlink_to(PROMETHEUS / "rules")
    port = free_port()
    (tmp_path / "targets").mkdir()
    listed = [{"targets": [f"127.0.0.1:{port}"]}]
    (tmp_path / "targets" / "prometheus.json").write_text(json.dumps(listed))
    names = sum(
        len(sd["names"])
        for job in [*config["scrape_configs"], *config["alerting"]["alertmanagers"]]
        for sd in job["dns_sd_configs"]
    )
    url = f"http://127.0.0.1:{port}"
    argv = [binary, f"--config.file={tmp_path / 'prometheus.yml'}"]
    argv += [f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"]
    with running(argv, log=tmp_path / "prometheus.log", ready_url=f"{url}/-/ready"):
        deadline = time.monotonic() + 60
        while dns_lookups(url) < names and time.monotonic() < deadline:
            time.sleep(0.5)
        assert dns_lookups(url) >= names, "every compose name looked up once"
        time.sleep(6)  # the discovery manager hands updates to the scrape pools every 5 s
        targets: list[tuple[str, str, str]] = []
        while time.monotonic() < deadline:
            body = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]
            targets = [
                (t["labels"]["job"], t["labels"]["instance"], t["health"])
                for t in body["activeTargets"]
            ]
            if targets and targets[0][2] != "unknown":
                break
            time.sleep(0.5)
        assert targets == [("prometheus", f"127.0.0.1:{port}", "up")]
        notifiers = requests.get(f"{url}/api/v1/alertmanagers", timeout=5).json()["data"]
        assert notifiers["activeAlertmanagers"] == []


def test_ansible_and_the_local_stack_write_the_targets_in_one_layout(tmp_path: Path) -> None:
    """The two file_sd writers, the role's template and `cepage up`'s function, agree."""
    template = ROOT / "playbooks/roles/cepage_monitoring/templates/targets.json.j2"
    jobs = {"node": ["10.0.0.5:9100", "10.0.0.6:9100"], "service": []}
    write_targets(tmp_path / "local", jobs)
    for name, targets in jobs.items():
        out = tmp_path / f"{name}.ansible.json"
        done = subprocess.run(
            [tool("ansible"), "localhost", "-i", "localhost,", "-c", "local",
             "-m", "ansible.builtin.template", "-a", f"src={template} dest={out}",
             "-e", json.dumps({"item": {"name": name, "targets": targets},
                               "ansible_python_interpreter": sys.executable})],
            env=ansible_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        local = json.loads((tmp_path / "local" / f"{name}.json").read_text())
        assert json.loads(out.read_text()) == local, name
    assert json.loads((tmp_path / "local" / "node.json").read_text()) == [{"targets": jobs["node"]}]
    assert json.loads((tmp_path / "local" / "service.json").read_text()) == []


def test_promtool_checks_the_rules() -> None:
    promtool = require_binary("promtool")
    files = sorted(str(p) for p in (PROMETHEUS / "rules").glob("*.yml"))
    done = run(promtool, "check", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test_and_they_pass() -> None:
    promtool = require_binary("promtool")
    alerts = alert_rules()
    tested = (PROMETHEUS / "tests" / "alerts.test.yml").read_text()
    untested = [name for name in alerts if f"alertname: {name}\n" not in tested]
    assert untested == []
    done = run(promtool, "test", "rules", "tests/alerts.test.yml", cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr


def alert_rules() -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for path in (PROMETHEUS / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    return rules


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted((PROMETHEUS / "rules").glob("*.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    return groups


RECORDED = re.compile(r"\bcepage:[a-z0-9_:]+")
SERVICE_METRIC = re.compile(r"\bcepage_[a-z0-9_]+")


def promql_texts() -> list[tuple[str, str]]:
    """(where, text) of every rule expression, alert annotation and dashboard query."""
    texts = []
    for group in rule_groups():
        for rule in group["rules"]:
            name = rule.get("record") or rule["alert"]
            texts.append((name, rule["expr"]))
            texts += [(f"{name} {key}", text) for key, text in rule.get("annotations", {}).items()]
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            where = f"{path.name}: {panel['title']}"
            texts += [(where, target["expr"]) for target in panel.get("targets", [])]
    return texts


def test_every_query_names_a_recorded_rule_or_a_metric_the_service_declares() -> None:
    """A misspelt name is not an error to Prometheus or Grafana, just an empty panel or an alert
    that can never fire: every ``cepage:`` name is recorded, every ``cepage_`` metric is one
    bento/metrics.py or bento/shadow.py registers (histograms with their _bucket/_sum/_count
    series)."""
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    service = "".join((ROOT / "bento" / f).read_text() for f in ("metrics.py", "shadow.py"))
    declared = set(re.findall(r'"(cepage_[a-z0-9_]+)"', service))
    unknown = []
    for where, text in promql_texts():
        unknown += [f"{where}: {n}" for n in RECORDED.findall(text) if n not in recorded]
        for name in SERVICE_METRIC.findall(text):
            if name not in declared and re.sub(r"_(bucket|sum|count)$", "", name) not in declared:
                unknown.append(f"{where}: {name}")
    assert unknown == []


def test_a_recording_rule_comes_after_the_rules_of_its_group_it_reads() -> None:
    """Rules of a group are evaluated in order: reading one recorded later gets the previous
    evaluation's value, a minute-old figure mixed with a fresh one."""
    for group in rule_groups():
        names = [r.get("record") or r["alert"] for r in group["rules"]]
        for position, rule in enumerate(group["rules"]):
            for name in RECORDED.findall(rule["expr"]):
                if name in names:
                    assert names.index(name) < position, f"{names[position]} reads {name}"


def test_every_alert_has_severity_summary_and_a_runbook_section() -> None:
    runbook = (ROOT / "docs" / "monitoring.md").read_text()
    for name, rule in alert_rules().items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"], name
        anchor = rule["annotations"]["runbook_url"]
        assert anchor == f"docs/monitoring.md#{name.lower()}", name
        assert f"### {name}\n" in runbook, f"docs/monitoring.md has no section for {name}"


@pytest.mark.parametrize("secrets", [False, True], ids=["no-receivers", "all-receivers"])
def test_rendered_alertmanager_config_is_valid_and_routes_by_severity(
    tmp_path: Path, secrets: bool
) -> None:
    amtool = require_binary("amtool")
    env = {"PATH": "/usr/bin:/bin"}
    if secrets:
        env |= {
            "CEPAGE_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
            "CEPAGE_ALERT_SLACK_WEBHOOK_URL": "https://slack.invalid/services/T0/B0/X",
            "CEPAGE_ALERT_EMAIL_TO": "oncall@example.invalid",
            "CEPAGE_ALERT_EMAIL_FROM": "alertmanager@example.invalid",
            "CEPAGE_ALERT_SMTP_HOST": "smtp.example.invalid:587",
            "CEPAGE_ALERT_SMTP_USER": "am",
            "CEPAGE_ALERT_SMTP_PASSWORD": "not-a-real-password",
        }
    out = tmp_path / "alertmanager.yml"
    done = subprocess.run(
        ["python3", str(MONITORING / "alertmanager" / "render.py"), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o077 == 0, "the rendered file holds secrets: owner-only"
    check = run(amtool, "check-config", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
    config = json.loads(out.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert ("email_configs" in receivers["oncall"]) is secrets
    assert "email_configs" not in receivers["team"]
    for labels, receiver in (("severity=critical", "oncall"), ("severity=warning", "team")):
        route = run(amtool, "config", "routes", "test", f"--config.file={out}", labels)
        assert route.stdout.strip() == receiver, route.stdout + route.stderr


def test_alertmanager_renderer_refuses_half_an_email_setup(tmp_path: Path) -> None:
    done = subprocess.run(
        ["python3", str(MONITORING / "alertmanager" / "render.py")],
        env={"PATH": "/usr/bin:/bin", "CEPAGE_ALERT_EMAIL_TO": "a@example.invalid"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "CEPAGE_ALERT_EMAIL_FROM, CEPAGE_ALERT_SMTP_HOST" in done.stderr


def provisioned_datasource_uid() -> str:
    path = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
    (datasource,) = yaml.safe_load(path.read_text())["datasources"]
    return str(datasource["uid"])


def test_dashboard_provider_is_read_only() -> None:
    path = GRAFANA / "provisioning" / "dashboards" / "cepage.yml"
    (provider,) = yaml.safe_load(path.read_text())["providers"]
    assert provider["allowUiUpdates"] is False


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] == EXPECTED_UIDS[path.name], "dashboard uids are stable: links use them"
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    uid = provisioned_datasource_uid()
    queries = 0
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["description"], f"{panel['title']} has no description"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
            assert target["expr"].strip(), panel["title"]
            queries += 1
    assert queries >= 6


def test_the_service_dashboard_shows_latency_first() -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "cepage-service.json").read_text())
    first = min(
        (p for p in dashboard["panels"] if p["type"] != "row"),
        key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]),
    )
    assert "latency" in first["title"].lower()
