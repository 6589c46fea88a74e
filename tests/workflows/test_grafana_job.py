"""The CI workflow's `grafana` job and its checker, scripts/ci/grafana_check.py.

Grafana cannot run here (no package), so the job (GitHub's runner) starts compose's own grafana
service and the checker asks the real Grafana's HTTP API. Here: the job starts exactly compose's
service (its image tag from compose, never repeated; its mounts compose's), and the checker,
run against a fake Grafana API built from the repository's provisioning files, passes when
everything is loaded and names what is missing otherwise; its log check is run on Grafana's own
log lines.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

from scripts.ci import grafana_check as gc
from tests.support.procs import ROOT
from tests.workflows.checks import Workflow, check_pins

pytestmark = pytest.mark.workflows

CI = Workflow.load(ROOT / ".github" / "workflows" / "ci.yml")
JOB = CI.jobs["grafana"]
RUNS = [str(step.get("run", "")) for step in JOB["steps"]]
COMPOSE_DIR = ROOT / "compose"
SERVICE = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())["services"]["grafana"]
PROVISIONING = gc.load_provisioning()


def step_index(text: str) -> int:
    return next(i for i, run in enumerate(RUNS) if text in run)


# --- the job --------------------------------------------------------------------------------------


def test_the_job_is_bounded_read_only_and_pinned_like_the_others() -> None:
    assert JOB["runs-on"] == "ubuntu-24.04"
    assert isinstance(JOB["timeout-minutes"], int) and 0 < JOB["timeout-minutes"] <= 20
    assert CI.data["permissions"] == {"contents": "read"} and "permissions" not in JOB
    assert check_pins(CI) == []
    checkout = JOB["steps"][0]
    assert checkout["uses"] == CI.jobs["lint"]["steps"][0]["uses"]
    assert checkout["with"]["persist-credentials"] is False


def test_the_job_starts_composes_own_grafana_service() -> None:
    """The image, its tag and the mounts are compose's: the job names neither the image nor a
    volume, it asks compose (the base file and the dev override, which publishes the port) to
    start its `grafana` service."""
    assert JOB["env"]["COMPOSE_FILE"] == "compose/docker-compose.yml:compose/docker-compose.dev.yml"
    up = RUNS[step_index(" up ")]
    assert re.search(r"docker compose --env-file \S+ up -d --wait .*\bgrafana$", up, re.M), up
    job_text = yaml.safe_dump(JOB)
    for service in ("grafana", "prometheus"):
        image = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())["services"][
            service
        ]["image"]
        name, tag = image.rsplit(":", 1)
        assert tag not in job_text and name not in job_text, f"{image} repeated in the job"
    assert not re.search(r"docker (run|pull|create)\b|\s(-v|--volume|--mount)[ =]\S*:/", job_text)


def test_the_overrides_leave_grafanas_image_mounts_and_environment_to_the_base_file() -> None:
    """So the base file the checker reads is what the job's compose runs (and prod's)."""
    for override in sorted(COMPOSE_DIR.glob("docker-compose.*.yml")):
        services = yaml.safe_load(override.read_text()).get("services") or {}
        grafana = services.get("grafana") or {}
        assert not {"image", "volumes", "environment", "env_file"} & set(grafana), override.name


def test_the_checker_reads_the_mounts_compose_gives_grafana() -> None:
    expected = {}
    for volume in SERVICE["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            expected[target] = (COMPOSE_DIR / source).resolve()
    assert PROVISIONING.mounts == expected
    assert PROVISIONING.provisioning == "/etc/grafana/provisioning"
    assert PROVISIONING.image == SERVICE["image"]
    assert PROVISIONING.environment["PROMETHEUS_URL"] == SERVICE["environment"]["PROMETHEUS_URL"]


def test_the_job_runs_the_checker_in_order_and_always_cleans_up() -> None:
    script = "\n".join(RUNS)
    order = ["grafana_check.py env", " up -d", "grafana_check.py api", "grafana_check.py logs"]
    assert [script.index(text) for text in order] == sorted(script.index(t) for t in order)
    api, logs = step_index("grafana_check.py api"), step_index("grafana_check.py logs")
    assert api < logs, "the log is read once the API shows provisioning done"
    assert "logs --no-color --no-log-prefix grafana" in RUNS[logs]
    assert "docker compose" in RUNS[api] and "port grafana 3000" in RUNS[api]
    last = JOB["steps"][-1]
    assert last["if"] == "always()" and "down -v" in last["run"]
    assert (ROOT / "scripts" / "ci" / "grafana_check.py").is_file()


# --- what the checker expects, from the repository ------------------------------------------------


def test_the_checker_expects_what_the_provisioning_files_hold() -> None:
    """Read here independently of the checker: every dashboard file's uid, every datasource."""
    mounts = PROVISIONING.mounts
    folder = mounts["/etc/grafana/provisioning"]
    sources = [
        entry["uid"]
        for path in sorted((folder / "datasources").glob("*.y*ml"))
        for entry in yaml.safe_load(path.read_text())["datasources"]
    ]
    assert sorted(d.uid for d in PROVISIONING.datasources) == sorted(sources) != []
    dashboards = {
        json.loads(path.read_text())["uid"]
        for path in mounts["/var/lib/grafana/dashboards"].rglob("*.json")
    }
    assert {d.uid for d in PROVISIONING.dashboards} == dashboards != set()
    providers = [
        p
        for path in sorted((folder / "dashboards").glob("*.y*ml"))
        for p in yaml.safe_load(path.read_text())["providers"]
    ]
    assert PROVISIONING.folders == {p["folder"] for p in providers}
    assert PROVISIONING.references and PROVISIONING.references <= set(sources)
    assert PROVISIONING.kinds <= gc.CHECKED_KINDS, "a new provisioning kind: teach the checker"
    assert PROVISIONING.version == SERVICE["image"].rsplit(":", 1)[1]


def test_the_env_file_satisfies_every_required_variable(tmp_path: Path) -> None:
    out = tmp_path / "ci.env"
    names = gc.write_env_file(out)
    assert out.stat().st_mode & 0o077 == 0
    values = gc.read_env_file(out)
    assert set(values) == set(names) and "GRAFANA_ADMIN_PASSWORD" in names
    assert len(set(values.values())) == len(values), "each variable its own random value"
    for path in gc.COMPOSE_FILES:
        for text in gc._strings(yaml.safe_load(path.read_text())):
            gc.interpolate(text, values)  # raises on a required variable left unset
    with pytest.raises(gc.CheckError, match="GRAFANA_ADMIN_PASSWORD is required"):
        gc.admin_credentials(PROVISIONING, {})
    assert gc.admin_credentials(PROVISIONING, values) == (
        "admin",
        values["GRAFANA_ADMIN_PASSWORD"],
    )


def test_interpolation_follows_compose() -> None:
    variables = {"SET": "x", "EMPTY": ""}
    cases = {
        "${SET}/$SET": "x/x",
        "${UNSET:-d}${EMPTY:-e}${EMPTY-f}${UNSET-g}": "deg",
        "$$SET": "$SET",
        "${SET:?m}": "x",
    }
    for text, expected in cases.items():
        assert gc.interpolate(text, variables) == expected, text
    for text in ("${UNSET:?m}", "${EMPTY:?m}", "${UNSET?m}"):
        with pytest.raises(gc.CheckError):
            gc.interpolate(text, variables)
    assert gc.interpolate("${EMPTY?m}", variables) == ""


# --- the checker against a fake Grafana API -------------------------------------------------------

USER, PASSWORD = "admin", "s3cret-for-the-fake"  # pragma: allowlist secret  (the fake's)


@dataclass
class FakeGrafana:
    """The state a fake Grafana serves: by default, exactly what the repository provisions."""

    version: str
    datasources: dict[str, dict[str, Any]]
    health: dict[str, tuple[int, dict[str, Any]]]
    dashboards: dict[str, dict[str, Any]]
    folders: list[str]
    requests: list[str] = field(default_factory=list)

    @classmethod
    def provisioned(cls, prov: gc.Provisioning) -> FakeGrafana:
        env = {k: v for k, v in prov.environment.items() if "$" not in v}
        return cls(
            version=prov.version,
            datasources={
                d.uid: {
                    "uid": d.uid,
                    "name": d.name,
                    "type": d.type,
                    "url": gc.interpolate(d.url, env),
                    "readOnly": not d.editable,
                }
                for d in prov.datasources
            },
            health={d.uid: (200, {"status": "OK", "message": "ok"}) for d in prov.datasources},
            dashboards={
                d.uid: {
                    "uid": d.uid,
                    "title": d.title,
                    "folderTitle": None if d.folder == gc.GENERAL else d.folder,
                    "provisioned": True,
                    "provisionedExternalId": d.file,
                }
                for d in prov.dashboards
            },
            folders=sorted(prov.folders),
        )

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/api/health":
            return 200, {"database": "ok", "version": self.version, "commit": "fake"}
        if path == "/api/datasources":
            return 200, list(self.datasources.values())
        if match := re.fullmatch(r"/api/datasources/uid/([^/]+)(/health)?", path):
            uid = unquote(match.group(1))
            if uid not in self.datasources:
                return 404, {"message": "Data source not found"}
            return self.health[uid] if match.group(2) else (200, self.datasources[uid])
        if path == "/api/search":
            assert query.get("type") == ["dash-db"]
            return 200, [
                {"uid": d["uid"], "title": d["title"], "type": "dash-db"}
                | ({"folderTitle": d["folderTitle"]} if d["folderTitle"] else {})
                for d in self.dashboards.values()
            ]
        if match := re.fullmatch(r"/api/dashboards/uid/([^/]+)", path):
            found = self.dashboards.get(unquote(match.group(1)))
            if not found:
                return 404, {"message": "Dashboard not found"}
            meta = {
                "provisioned": found["provisioned"],
                "provisionedExternalId": found["provisionedExternalId"],
                "folderTitle": found["folderTitle"] or gc.GENERAL,
            }
            return 200, {"dashboard": {"uid": found["uid"], "title": found["title"]}, "meta": meta}
        if path == "/api/folders":
            return 200, [{"uid": f"f{i}", "title": t} for i, t in enumerate(self.folders)]
        return 404, {"message": "Not found"}


@pytest.fixture
def fake() -> Iterator[tuple[FakeGrafana, gc.Grafana]]:
    state = FakeGrafana.provisioned(PROVISIONING)
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            state.requests.append(parts.path)
            if self.headers.get("Authorization") != expected:
                status, body = 401, {"message": "Unauthorized"}
            else:
                status, body = state.answer(parts.path, parse_qs(parts.query))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        yield state, gc.Grafana(url, USER, PASSWORD)
    finally:
        server.shutdown()
        server.server_close()


def test_the_checker_passes_when_everything_provisioned_is_there(
    fake: tuple[FakeGrafana, gc.Grafana],
) -> None:
    state, grafana = fake
    assert gc.check_api(grafana, PROVISIONING) == []
    # It asked for each datasource's health and each dashboard by uid.
    for source in PROVISIONING.datasources:
        assert f"/api/datasources/uid/{source.uid}/health" in state.requests
    for dashboard in PROVISIONING.dashboards:
        assert f"/api/dashboards/uid/{dashboard.uid}" in state.requests


def test_the_command_line_exits_0_then_1(
    fake: tuple[FakeGrafana, gc.Grafana], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, grafana = fake
    env_file = tmp_path / "ci.env"
    env_file.write_text(f"GRAFANA_ADMIN_PASSWORD={PASSWORD}\n")
    argv = ["api", "--url", grafana.url, "--env-file", str(env_file), "--timeout", "0"]
    assert gc.main(argv) == 0
    state.dashboards.pop(PROVISIONING.dashboards[0].uid)
    assert gc.main(argv) == 1
    assert f"dashboard {PROVISIONING.dashboards[0].uid!r}" in capsys.readouterr().err
    env_file.write_text("GRAFANA_ADMIN_PASSWORD=wrong\n")
    assert gc.main(argv) == 1
    assert "/api/health answered 401" in capsys.readouterr().err


def _break(state: FakeGrafana, how: str) -> str:
    """Break the fake one way; the words the checker's report must hold."""
    source, dashboard = PROVISIONING.datasources[0], PROVISIONING.dashboards[-1]
    if how == "dashboard missing":
        state.dashboards.pop(dashboard.uid)
        return f"dashboard {dashboard.uid!r} ({dashboard.file}) is not loaded"
    if how == "datasource missing":
        state.datasources.pop(source.uid)
        return f"datasource {source.uid!r} is provisioned but missing"
    if how == "datasource unhealthy":
        state.health[source.uid] = (400, {"status": "ERROR", "message": "connection refused"})
        return f"datasource {source.uid!r}: health check answered 400"
    if how == "datasource url":
        state.datasources[source.uid]["url"] = "http://elsewhere:9090"
        return f"datasource {source.uid!r}: url 'http://elsewhere:9090'"
    if how == "wrong folder":
        state.dashboards[dashboard.uid]["folderTitle"] = None
        return f"dashboard {dashboard.uid!r} is in folder 'General'"
    if how == "not provisioned":
        state.dashboards[dashboard.uid]["provisioned"] = False
        return f"dashboard {dashboard.uid!r} is not provisioned"
    if how == "extra dashboard":
        state.dashboards["made-in-the-ui"] = dict(state.dashboards[dashboard.uid])
        state.dashboards["made-in-the-ui"]["uid"] = "made-in-the-ui"
        return "dashboard 'made-in-the-ui' is there but in no file"
    if how == "extra folder":
        state.folders.append("scratch")
        return "folders ["
    if how == "other version":
        state.version = "10.0.0"
        return f"Grafana '10.0.0' runs, compose's image is {PROVISIONING.image}"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "dashboard missing",
        "datasource missing",
        "datasource unhealthy",
        "datasource url",
        "wrong folder",
        "not provisioned",
        "extra dashboard",
        "extra folder",
        "other version",
    ],
)
def test_the_checker_names_what_differs(fake: tuple[FakeGrafana, gc.Grafana], how: str) -> None:
    state, grafana = fake
    expected = _break(state, how)
    problems = gc.check_api(grafana, PROVISIONING)
    assert any(expected in p for p in problems), problems


def test_the_checker_waits_for_grafana_then_gives_up(fake: tuple[FakeGrafana, gc.Grafana]) -> None:
    _, grafana = fake
    closed = gc.Grafana("http://127.0.0.1:9", USER, PASSWORD)  # discard port: nothing listens
    problems = gc.wait_for(closed, PROVISIONING, timeout_s=0)
    assert problems and "127.0.0.1:9" in problems[0]
    assert gc.wait_for(grafana, PROVISIONING, timeout_s=0) == []


def test_a_kind_of_provisioning_the_checker_does_not_know_fails(
    fake: tuple[FakeGrafana, gc.Grafana],
) -> None:
    _, grafana = fake
    prov = gc.Provisioning(**{**PROVISIONING.__dict__, "kinds": PROVISIONING.kinds | {"alerting"}})
    assert any("alerting/ is mounted but not checked" in p for p in gc.check_api(grafana, prov))


# --- Grafana's log --------------------------------------------------------------------------------

# Grafana 11's console format (GF_LOG_MODE=console), as `docker compose logs --no-log-prefix`.
STARTED = """\
logger=settings t=2026-11-30T23:00:00.000Z level=info msg="Starting Grafana" version=11.4.8
logger=provisioning.datasources t=2026-11-30T23:00:01.000Z level=info msg="inserting datasource from configuration" name=Prometheus uid=prometheus
logger=provisioning.alerting t=2026-11-30T23:00:01.100Z level=error msg="can't read alerting provisioning files from directory" path=/etc/grafana/provisioning/alerting error="open /etc/grafana/provisioning/alerting: no such file or directory"
logger=provisioning.plugins t=2026-11-30T23:00:01.200Z level=error msg="Failed to read plugin provisioning files from directory" path=/etc/grafana/provisioning/plugins error="open /etc/grafana/provisioning/plugins: no such file or directory"
logger=provisioning.dashboard t=2026-11-30T23:00:01.300Z level=info msg="starting to provision dashboards"
logger=plugin.backgroundinstaller t=2026-11-30T23:00:02.000Z level=error msg="Failed to get plugin info" error="no egress"
logger=provisioning.dashboard t=2026-11-30T23:00:02.100Z level=info msg="finished to provision dashboards"
"""  # noqa: E501


def test_the_log_check_passes_grafanas_start_and_notes_absent_folders() -> None:
    problems, notes = gc.check_logs(STARTED, PROVISIONING)
    assert problems == []
    assert notes == [
        "provisioning.alerting: no alerting/ folder in the repository, nothing to load",
        "provisioning.plugins: no plugins/ folder in the repository, nothing to load",
    ]


@pytest.mark.parametrize(
    "line",
    [
        'logger=provisioning.dashboard type=file name=cepage t=2026-11-30T23:00:02Z level=error msg="failed to load dashboard from " file=/var/lib/grafana/dashboards/cepage-host.json error="invalid character"',  # noqa: E501
        'logger=provisioning t=2026-11-30T23:00:02Z level=error msg="Failed to provision data sources" error="datasource.yaml config is invalid"',  # noqa: E501
        # A missing folder of a kind the repository does provision is an error.
        'logger=provisioning.datasources t=2026-11-30T23:00:02Z level=error msg="can\'t read datasource provisioning files from directory" path=/etc/grafana/provisioning/datasources error="open /etc/grafana/provisioning/datasources: no such file or directory"',  # noqa: E501
        '{"logger":"provisioning.dashboard","level":"error","msg":"failed to save dashboard"}',
    ],
)
def test_the_log_check_fails_on_a_provisioning_error(line: str) -> None:
    problems, _ = gc.check_logs(STARTED + line + "\n", PROVISIONING)
    assert problems == [line]


def test_the_log_check_fails_on_an_empty_log(tmp_path: Path) -> None:
    problems, _ = gc.check_logs("", PROVISIONING)
    assert problems and "no Grafana log line" in problems[0]
    log = tmp_path / "grafana.log"
    log.write_text(STARTED)
    assert gc.main(["logs", str(log)]) == 0
    log.write_text("")
    assert gc.main(["logs", str(log)]) == 1
