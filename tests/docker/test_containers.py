"""Real images, run together on one Docker network.

Builds the service image with `bentoml containerize` (plus the slim runtime stage), the UI, MLflow
and retrain images, then proves: the UI container reaches the service container and a prediction
works; the service's /metrics counts it; MLflow, its registry in a real PostgreSQL, serves its
API and a one-shot retrain container logs and registers a model through it; every container runs
as a non-root user. Each container runs with the compose file's hardening (no capability,
no-new-privileges, a read-only root filesystem and its tmpfs): what works here works hardened.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.docker.conftest import (
    Container,
    Docker,
    Images,
    Network,
    assert_hardened,
    compose_env,
    hardening,
)
from tests.support.postgres import Postgres, postgres_server
from tests.support.procs import ROOT, free_port, require

COMPOSE = ROOT / "compose"

# The first test pays for the builds (cold: base image + four images, several minutes).
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(2400)]

# Runs inside the UI container: the UI's own client, over the Docker network, to the service.
UI_PROBE = """
import json
from ui.client import ApiClient
client = ApiClient("http://service:3000")
meta = client.metadata()
record = {f.name: f.median for f in meta.schema.features}
predictions = client.predict([record, record])
feedback = client.feedback(predictions[0].id, predictions[0].label)
print(json.dumps({"version": meta.version, "classes": list(meta.schema.classes),
                  "labels": [p.label for p in predictions],
                  "probabilities": predictions[0].probabilities,
                  "feedback_correct": feedback.correct}))
"""


@pytest.fixture(scope="module")
def service(network: Network, images: Images) -> Container:
    container = network.start(
        images.service,
        "service",
        port=3000,
        env={"CEPAGE_FEEDBACK_KEY": secrets.token_hex(16), "CEPAGE_WORKERS": "1"},
        flags=hardening("service"),
    )
    network.wait_http(container, "/readyz")
    return container


# Characters a generated password may hold and a URI may not: the entrypoint must encode them.
PG_PASSWORD = "p@ss/w:rd%?#"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL on the host (the `postgres` image cannot be pulled here), listening on
    every address so that containers reach it through their network's gateway, with a password."""
    with postgres_server(listen="0.0.0.0") as server:
        server.psql(f"CREATE ROLE mlflow LOGIN PASSWORD '{PG_PASSWORD}'")
        server.psql("CREATE DATABASE mlflow OWNER mlflow")
        yield server


@pytest.fixture(scope="module")
def mlflow(network: Network, images: Images, postgres: Postgres) -> Container:
    """The MLflow image as compose runs it: its backend store in PostgreSQL, built by the
    entrypoint from POSTGRES_PASSWORD (the host's server standing for the `postgres` service);
    artifacts served by the server from a named volume."""
    gateway = network.docker.inspect(network.name)["IPAM"]["Config"][0]["Gateway"]
    volume = f"{network.name}-mlflow"
    env = {"POSTGRES_PASSWORD": PG_PASSWORD, "POSTGRES_HOST": gateway}
    env["POSTGRES_PORT"] = str(postgres.port)
    container = network.start(
        images.mlflow,
        "mlflow",
        port=5000,
        env=env,
        volumes=[f"{volume}:/mlflow"],
        flags=hardening("mlflow"),
    )
    network.wait_http(container, "/health")
    return container


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def test_ui_container_predicts_through_the_service_container(
    docker: Docker, network: Network, images: Images, service: Container
) -> None:
    before = requests.get(f"{service.url}/metrics", timeout=10).text
    ui = network.start(
        images.ui,
        "ui",
        port=8501,
        env={"CEPAGE_API_URL": "http://service:3000"},
        flags=hardening("ui"),
    )
    network.wait_http(ui, "/_stcore/health")
    # The page itself is served (Streamlit's shell) by the UI container.
    page = requests.get(ui.url, timeout=10)
    assert page.ok and "<title>" in page.text.lower()

    probe = docker.run("exec", ui.name, "python3", "-c", UI_PROBE, timeout=60)
    answer: dict[str, Any] = json.loads(probe.stdout.strip().splitlines()[-1])
    assert len(answer["labels"]) == 2
    assert answer["labels"][0] == answer["labels"][1], "same record, same answer"
    assert set(answer["labels"]) <= set(answer["classes"])
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert answer["feedback_correct"] is True

    # The service's own /metrics counted the UI's requests (published on 127.0.0.1 only).
    after = requests.get(f"{service.url}/metrics", timeout=10).text
    name = "bentoml_service_request_total"
    assert (
        metric_total(after, name, endpoint="/predict")
        >= metric_total(before, name, endpoint="/predict") + 1
    )
    assert metric_total(after, "cepage_predictions_total") >= (
        metric_total(before, "cepage_predictions_total") + 2
    )
    # The UI's image healthcheck agrees.
    assert network.wait_healthy(ui) == "healthy"
    for container in (ui, service):
        assert_hardened(docker, container.name)


def test_service_container_metrics_health_and_bad_input(
    network: Network, service: Container
) -> None:
    metrics = requests.get(f"{service.url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "bentoml_service_request_duration_seconds_bucket" in metrics.text
    assert requests.get(f"{service.url}/livez", timeout=5).status_code == 200
    bad = requests.post(f"{service.url}/predict", json={"records": [{"nope": 1.0}]}, timeout=10)
    assert bad.status_code == 400
    assert network.wait_healthy(service) == "healthy"


def test_retrain_container_logs_and_registers_a_model_in_the_mlflow_container(
    docker: Docker, network: Network, images: Images, mlflow: Container, postgres: Postgres
) -> None:
    api = f"{mlflow.url}/api/2.0/mlflow"
    assert requests.get(f"{api}/experiments/search?max_results=10", timeout=10).ok
    missing = requests.get(f"{api}/registered-models/get?name=cepage-classifier", timeout=10)
    assert missing.status_code == 404, "a fresh server has no model yet"

    job = f"{network.name}-retrain"
    network.started.append(job)
    done = docker.run(
        "run", "--name", job, "--network", network.name, *hardening("retrain"),
        "-e", "MLFLOW_TRACKING_URI=http://mlflow:5000",
        images.retrain, "retrain", "--no-build",
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"retrain failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"

    model = requests.get(f"{api}/registered-models/get?name=cepage-classifier", timeout=10)
    assert model.ok, model.text
    registered = model.json()["registered_model"]
    aliases = {a["alias"]: a["version"] for a in registered.get("aliases", [])}
    assert "champion" in aliases, aliases
    version = requests.get(
        f"{api}/model-versions/get?name=cepage-classifier&version={aliases['champion']}",
        timeout=10,
    ).json()["model_version"]
    run = requests.get(f"{api}/runs/get?run_id={version['run_id']}", timeout=10).json()["run"]
    # Artifacts went through the server (--serve-artifacts), not to a path inside the job.
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:"), run["info"]["artifact_uri"]
    metrics = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
    assert 0.5 < metrics["accuracy"] <= 1.0
    listed = requests.get(
        f"{mlflow.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": ""}, timeout=10
    )
    assert listed.ok and listed.json().get("files"), "the server stores the logged artifacts"
    # MLflow's /metrics for Prometheus' `mlflow` job.
    exported = requests.get(f"{mlflow.url}/metrics", timeout=10).text
    assert metric_total(exported, "mlflow_http_request_duration_seconds_count") > 0
    # The registry lives in PostgreSQL (what the backup job dumps), not in a file in the volume.
    rows = postgres.psql("SELECT alias FROM registered_model_aliases", "mlflow").split()
    assert "champion" in rows, rows
    # The database password is in no process's command line (what `ps` shows) in the container.
    argv = docker.run("exec", mlflow.name, "sh", "-c", "cat /proc/[0-9]*/cmdline").stdout
    assert "mlflow" in argv and "postgresql" not in argv and PG_PASSWORD not in argv
    # All of it with the compose file's hardening: the job's and the server's.
    host = docker.inspect(job)["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"], host
    assert_hardened(docker, mlflow.name)


@pytest.mark.parametrize("which", ["service", "ui", "mlflow", "retrain"])
def test_images_run_as_non_root(docker: Docker, images: Images, which: str) -> None:
    image = images.all()[which]
    user = docker.inspect(image)["Config"]["User"]
    assert user and user.split(":")[0] not in ("root", "0"), f"{image} has USER {user!r}"
    uid = docker.run("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
    assert uid != "0", f"{image} runs as root"


def test_runtime_images_carry_only_their_own_dependencies(docker: Docker, images: Images) -> None:
    probe = (
        "import importlib.util as u, json; print(json.dumps({m: bool(u.find_spec(m)) for m in "
        "('streamlit', 'mlflow', 'sklearn', 'bentoml')}))"
    )
    found = {
        which: json.loads(
            docker.run("run", "--rm", "--entrypoint", "python3", image, "-c", probe).stdout
        )
        for which, image in (("ui", images.ui), ("service", images.service))
    }
    assert found["ui"] == {"streamlit": True, "mlflow": False, "sklearn": False, "bentoml": False}
    assert found["service"]["bentoml"] and found["service"]["sklearn"]
    assert not found["service"]["streamlit"]
    # No compilers in the runtime images (BentoML's build stage has them; the slim stage drops it).
    for image in (images.service, images.ui, images.mlflow):
        gcc = docker.run("run", "--rm", "--entrypoint", "sh", image, "-c", "command -v gcc cc",
                         check=False)  # fmt: skip
        assert gcc.stdout.strip() == "", f"{image} carries a compiler: {gcc.stdout}"


def test_compose_dev_stack_runs_the_built_images(docker: Docker, images: Images) -> None:
    """The compose files themselves, live: service + UI + the Alertmanager config job.

    Only the images built here run (PostgreSQL, Grafana, Prometheus images cannot be pulled in
    the test environment), so the services start with --no-deps; the compose healthchecks,
    the service DNS name, the 127.0.0.1 port bindings and the rendered config are real.
    """
    compose = shutil.which("docker-compose")
    require(compose is not None, "`docker-compose` is not installed (apt install docker-compose)")
    project = f"cepagetest{uuid.uuid4().hex[:8]}"
    prefix = f"{project}-img"
    for which in ("service", "ui"):
        docker.run("tag", images.all()[which], f"{prefix}/{which}:t")
    api_port, ui_port = free_port(), free_port()
    env = {
        **compose_env(
            POSTGRES_PASSWORD="unused",
            CEPAGE_FEEDBACK_KEY=secrets.token_hex(16),
            GRAFANA_ADMIN_PASSWORD="unused",
            CEPAGE_PROXY_PASSWORD_HASH="unused",
            CEPAGE_IMAGE_PREFIX=prefix,
            CEPAGE_IMAGE_TAG="t",
            CEPAGE_API_PORT=str(api_port),
            CEPAGE_UI_PORT=str(ui_port),
            COMPOSE_PROJECT_NAME=project,
        ),
        "DOCKER_HOST": docker.env["DOCKER_HOST"],
    }
    base = [str(compose), "-f", str(COMPOSE / "docker-compose.yml")]
    base += ["-f", str(COMPOSE / "docker-compose.dev.yml")]

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    try:
        services = ("service", "ui", "alertmanager-config")
        up = run("up", "-d", "--no-deps", "--no-build", *services)
        assert up.returncode == 0, up.stderr[-4000:]
        ids = {name: run("ps", "-q", name).stdout.strip() for name in ("service", "ui")}
        deadline = time.monotonic() + 180
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            health = {
                name: str(docker.inspect(cid)["State"].get("Health", {}).get("Status"))
                for name, cid in ids.items()
            }
            if set(health.values()) == {"healthy"} or "unhealthy" in health.values():
                break
            time.sleep(2)
        assert health == {"service": "healthy", "ui": "healthy"}, (health, run("logs").stdout)
        # Healthy with the compose file's hardening, each on its own networks only.
        for cid in ids.values():
            assert_hardened(docker, cid)
        joined = {
            name: set(docker.inspect(cid)["NetworkSettings"]["Networks"])
            for name, cid in ids.items()
        }
        assert joined == {
            "ui": {f"{project}_app"},
            "service": {f"{project}_app", f"{project}_monitoring"},
        }, joined

        # Published on 127.0.0.1 only, at the ports .env asked for.
        bindings = docker.inspect(ids["service"])["HostConfig"]["PortBindings"]["3000/tcp"]
        assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(api_port)}]
        assert requests.get(f"http://127.0.0.1:{api_port}/readyz", timeout=5).ok
        assert requests.get(f"http://127.0.0.1:{ui_port}/_stcore/health", timeout=5).ok
        # The UI reaches the service by its compose name (CEPAGE_API_URL from the compose file).
        probe = docker.run("exec", ids["ui"], "python3", "-c", UI_PROBE.replace(
            '"http://service:3000"', 'os.environ["CEPAGE_API_URL"]').replace(
            "import json", "import json, os"), timeout=60)  # fmt: skip
        assert json.loads(probe.stdout.strip().splitlines()[-1])["feedback_correct"] is True

        # The Alertmanager config job rendered a file Alertmanager (uid 65534) can read.
        def rendered_once() -> str:
            job = run("ps", "-q", "alertmanager-config").stdout.strip()
            deadline = time.monotonic() + 60
            while docker.inspect(job)["State"]["Running"] and time.monotonic() < deadline:
                time.sleep(1)
            assert docker.inspect(job)["State"]["ExitCode"] == 0, docker.logs(job)
            return job

        job = rendered_once()
        host = docker.inspect(job)["HostConfig"]
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True, host
        assert [c.upper().removeprefix("CAP_") for c in host["CapAdd"]] == ["CHOWN"], host
        # Every deploy runs the job again over the file it left (owned by 65534, mode 0600),
        # which root without DAC_OVERRIDE cannot open for writing: it must replace it instead.
        again = run("up", "-d", "--no-deps", "--force-recreate", "alertmanager-config")
        assert again.returncode == 0, again.stderr[-4000:]
        rendered_once()
        shown = docker.run(
            "run", "--rm", "--user", "65534:65534", "-v", f"{project}_alertmanager-config:/c:ro",
            "--entrypoint", "sh",
            images.ui, "-c", "stat -c %u /c/alertmanager.yml && cat /c/alertmanager.yml",
            check=False,
        )  # fmt: skip
        owner, _, text = shown.stdout.partition("\n")
        assert owner == "65534", shown
        assert "route" in json.loads(text)
    finally:
        run("down", "-v", "--remove-orphans", timeout=120)
        for which in ("service", "ui"):
            docker.run("rmi", f"{prefix}/{which}:t", check=False)
