"""The real site.yml, services on, in the dev layout: check 1, then check 4 (the restore).

One host (systemd, its own Docker engine installed by the roles from Debian's docker.io) gets
`make deploy`'s path (playbooks/deploy.sh) twice with Terraform's inventory shape, the dev
group_vars and an encrypted vault; the project's images come from the local registry under the
environment's prefix, the upstream ones through it as a Docker Hub mirror (real when this machine
can pull them, else stand-ins: the run's summary says which). Then, through the proxy on the
host's 443 published on 127.0.0.1, with TLS verified against the proxy's own CA: the API's
/readyz and a prediction, the UI, and MLflow behind basic auth (401 without, 200 with). Last,
backup -> wipe -> restore with PostgreSQL in its container and the buckets in a real
S3-compatible server (tests/rehearsal/s3.py, started before the first deploy): see check 4 below.

What differs from Scaleway, and why, is tests/rehearsal/deploy.py's REHEARSAL_VARS, s3.py's
endpoints and images.py's MLflow workaround (a bug this rehearsal found). Grafana is a placeholder
that only answers its health check: no Grafana can be had here. Time: ~7.5 min warm on 2 cores
(images built, Go tools cached): push ~2 min, first apply ~2.5 min, second ~1.5 min, the
restore check ~1.5 min.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.conftest import Run
from tests.docker.conftest import Images
from tests.rehearsal import deploy, hosts, s3, web
from tests.rehearsal import images as pushing
from tests.rehearsal.conftest import UPSTREAM_REPORT, started

# The module fixture builds the project's images when the rehearsal runs in a process of its own
# (`make test`, `make rehearse`), then pushes them and deploys twice: 922 s on 2 cores in one run,
# over pytest's default 900 s per test.
pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.timeout(1800)]

TAG = "rehearsal-v1"
HOST = "cepage-dev-service-1"
# The services compose runs on the dev host (the profiles' jobs and host metrics stay off).
SERVICES = {"postgres", "mlflow", "service", "ui", "prometheus", "alertmanager", "grafana",
            "proxy"}  # fmt: skip
# Units the roles install and start on every host.
UNITS = ("docker", "nftables", "fail2ban", "ssh", "chrony", "prometheus-node-exporter")


@dataclass(frozen=True)
class Deployed:
    rehearsal: hosts.Rehearsal
    host: hosts.Host
    pushed: pushing.Pushed
    first: Run
    second: Run
    ca: str
    """The proxy's own CA certificate (PEM): what the TLS checks verify against."""
    deployer: deploy.Deployer
    storage: s3.S3Server
    """The S3-compatible server standing for Scaleway Object Storage."""

    def sh(self, script: str) -> str:
        return self.rehearsal.docker.run("exec", self.host.container, "sh", "-c", script).stdout

    def https(self, site: str, path: str, **kwargs: object) -> web.Response:
        return web.request(
            f"{site}{deploy.DOMAIN}",
            self.host.ports[443],
            path,
            self.ca,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def deployed(
    engine: hosts.Docker,
    host_image: str,
    images: Images,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployed]:
    with started(engine, "dev", host_image) as rehearsal:
        # The object storage first, as Terraform makes the buckets before any host: MLflow's
        # artifacts go to it from the first deploy on.
        storage = s3.start(rehearsal)
        project = {"service": images.service, "ui": images.ui, "mlflow": images.mlflow}
        pushed = pushing.push_all(rehearsal, project, TAG)
        UPSTREAM_REPORT[:] = [f"  {u.ref}: {u.source}" for u in pushed.upstream]
        base = tmp_path_factory.mktemp("rehearsal-dev")
        deployer = deploy.prepare(rehearsal, base, TAG, [rehearsal.subnet])
        s3.write_group_vars(deployer.directory, storage)
        first = deployer.deploy()
        first.assert_ok()
        second = deployer.deploy("-v")  # -v: a changed task's result says what changed
        host = rehearsal.host(HOST)
        ca = rehearsal.docker.run(
            "exec", host.container, "docker", "exec", "cepage-proxy-1",
            "cat", "/data/caddy/pki/authorities/local/root.crt",
        ).stdout  # fmt: skip
        yield Deployed(rehearsal, host, pushed, first, second, ca, deployer, storage)


def test_the_upstream_images_are_real_or_say_which_stand_in_ran(deployed: Deployed) -> None:
    refs = {u.ref: u.source for u in deployed.pushed.upstream}
    assert set(refs) >= set(pushing.upstream_refs())
    for ref, source in refs.items():
        assert source in ("pulled", "local") or source.startswith("stand-in: "), (ref, source)
    # Grafana has no stand-in: when it could not be pulled, the placeholder says so.
    grafana = next(s for r, s in refs.items() if r.startswith("grafana/grafana:"))
    assert grafana == "pulled" or "placeholder" in grafana


def test_first_apply_converges_the_fresh_host(deployed: Deployed) -> None:
    recap = deployed.first.recap()
    assert recap[HOST]["failed"] == 0 and recap[HOST]["changed"] > 20, recap


def changed_results(run: Run) -> str:
    """The output of each task that reported a change (with -v, its result)."""
    blocks = run.output.split("\nTASK [")
    return "\n".join(b[:3000] for b in blocks if "\nchanged: [" in b)


def test_second_apply_changes_nothing(deployed: Deployed) -> None:
    deployed.second.assert_ok()
    assert deployed.second.recap()[HOST]["changed"] == 0, changed_results(deployed.second)


def test_the_roles_services_run_under_systemd(deployed: Deployed) -> None:
    states = deployed.sh(f"systemctl is-active {' '.join(UNITS)} || true").split()
    assert dict(zip(UNITS, states, strict=True)) == dict.fromkeys(UNITS, "active")
    assert deployed.sh("systemctl is-active cepage-backup.timer || true").strip() == "active"
    info = json.loads(deployed.sh("docker info --format '{{json .}}'"))
    assert info["DockerRootDir"] == "/srv/cepage-data/docker"  # on the data volume


def test_every_service_of_the_stack_is_up_and_healthy(deployed: Deployed) -> None:
    lines = deployed.sh("docker compose -p cepage ps --format json").splitlines()
    containers = [json.loads(line) for line in lines if line.strip()]
    by_service = {c["Service"]: c for c in containers}
    assert set(by_service) == SERVICES, sorted(by_service)
    for service, container in by_service.items():
        assert container["State"] == "running", (service, container["Status"])
        assert container["Health"] in ("healthy", ""), (service, container["Status"])
    prefix = deployed.rehearsal.registry.pull if deployed.rehearsal.registry else ""
    assert by_service["service"]["Image"] == f"{prefix}/cepage-dev/service:{TAG}"


def test_the_api_answers_through_the_proxy_over_tls(deployed: Deployed) -> None:
    assert deployed.https("api.", "/readyz").status == 200
    metadata = deployed.https("api.", "/metadata").json()
    record = {f["name"]: f["median"] for f in metadata["feature_schema"]["features"]}
    response = deployed.https("api.", "/predict", method="POST", body={"records": [record]})
    assert response.status == 200, response.body[:500]
    [prediction] = response.json()["predictions"]
    assert prediction["label"] in metadata["feature_schema"]["classes"]
    # /metrics stays inside (the proxy's own answer).
    assert deployed.https("api.", "/metrics").status == 404


def test_the_ui_is_served(deployed: Deployed) -> None:
    response = deployed.https("", "/")
    assert response.status == 200 and b"<html" in response.body.lower()


def test_mlflow_is_behind_basic_auth(deployed: Deployed) -> None:
    refused = deployed.https("mlflow.", "/")
    assert refused.status == 401 and "www-authenticate" in refused.headers
    wrong = deployed.https("mlflow.", "/", auth=(deploy.PROXY_USER, "wrong"))
    assert wrong.status == 401
    allowed = deployed.https("mlflow.", "/", auth=(deploy.PROXY_USER, deploy.PROXY_PASSWORD))
    assert allowed.status == 200, allowed.body[:300]


# --- check 4: backup -> wipe -> restore, in the mode prod uses (these run last: they wipe) ------
# PostgreSQL in its compose container (the backup role's pg_mode `compose`: the inventory has no
# managed database), artifacts and dumps in the S3-compatible server, the backups encrypted with
# the vault's passphrase. The registry is filled through the proxy (TLS against its CA, basic
# auth) with the `mlflow` client, as an operator's laptop would: MLflow serves the artifacts
# (--serve-artifacts), so they travel through the proxy to the artifacts bucket. The backup is the
# host's own unit; the restore is `make restore`'s path (playbooks/deploy.sh restore).

MODEL = "cepage-classifier"
EXPERIMENT = "rehearsal-restore"
# The admin sites let an address make 60 requests a minute (compose/caddy/sites/admin-on.caddy);
# registering and reading back two versions takes more, so the proxy answers 429 and the mlflow
# client backs off and retries (~50 s of the ~60 s this check spends before the backup).
MLFLOW_URI = f"https://mlflow.{deploy.DOMAIN}"


@contextmanager
def mlflow_through_proxy(deployed: Deployed, directory: Path) -> Iterator[Any]:
    """An ``MlflowClient`` of https://mlflow.DOMAIN, through the proxy's published 443.

    The site's name resolves to 127.0.0.1 and the proxy's port for this client only (a patched
    ``getaddrinfo``): TLS gets the site's name (SNI, verified against the proxy's CA) and the
    proxy the Host it routes on, as from a machine whose DNS points the name at the host.
    """
    from mlflow import MlflowClient  # heavy: only where used

    ca = directory / "proxy-ca.pem"
    ca.write_text(deployed.ca)
    resolve = socket.getaddrinfo
    port = deployed.host.ports[443]

    def pinned(host: Any, service: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(f".{deploy.DOMAIN}"):
            return resolve("127.0.0.1", port, *args, **kwargs)
        return resolve(host, service, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", pinned)
        patch.setenv("MLFLOW_TRACKING_USERNAME", deploy.PROXY_USER)
        patch.setenv("MLFLOW_TRACKING_PASSWORD", deploy.PROXY_PASSWORD)
        patch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(ca))
        patch.delenv("MLFLOW_TRACKING_INSECURE_TLS", raising=False)
        patch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        yield MlflowClient(tracking_uri=MLFLOW_URI, registry_uri=MLFLOW_URI)


def register_models(client: Any, directory: Path, served: dict[str, Any]) -> None:
    """Two versions of a real scikit-learn model (their MLmodel, weights, environment files and
    a note) in MODEL, with the aliases the stack uses: champion (v2), previous (v1)."""
    import mlflow.sklearn
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    features, target = load_wine(return_X_y=True, as_frame=True)
    experiment = client.create_experiment(EXPERIMENT)
    client.create_registered_model(MODEL, description="Registered by the restore rehearsal.")
    for version, strength in enumerate((0.1, 1.0), start=1):
        model = LogisticRegression(C=strength, max_iter=5000).fit(features, target)
        saved = directory / f"model-v{version}"
        mlflow.sklearn.save_model(model, saved)
        run = client.create_run(experiment, run_name=f"rehearsal-v{version}")
        run_id = run.info.run_id
        client.log_param(run_id, "C", strength)
        client.log_artifacts(run_id, str(saved), "model")
        client.log_text(run_id, f"version {version}, C={strength}\n", "notes/about.txt")
        client.set_terminated(run_id)
        created = client.create_model_version(
            MODEL, f"{run.info.artifact_uri}/model", run_id=run_id
        )
        assert created.version == str(version), created
    # The champion is recorded as the model the service serves (its /metadata), so that the
    # restored registry and the serving service can be compared.
    client.set_model_version_tag(MODEL, "2", "served_bento_model", served["bento_model"])
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "previous", "1")


def digests(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def registry_state(client: Any, directory: Path) -> dict[str, Any]:
    """What MLflow holds: each registered model's aliases and versions (run, source, status,
    tags, the run's parameters) and every artifact file of each version's run, by sha256."""
    state: dict[str, Any] = {}
    for listed in client.search_registered_models():
        model = client.get_registered_model(listed.name)
        versions: dict[str, Any] = {}
        for version in client.search_model_versions(f"name='{model.name}'"):
            target = directory / model.name / version.version
            target.mkdir(parents=True)
            client.download_artifacts(version.run_id, "", str(target))
            versions[version.version] = {
                "run_id": version.run_id,
                "source": version.source,
                "status": version.status,
                "tags": dict(version.tags),
                "params": dict(client.get_run(version.run_id).data.params),
                "artifacts": digests(target),
            }
        state[model.name] = {"aliases": dict(model.aliases), "versions": versions}
    return state


def served(deployed: Deployed) -> dict[str, Any]:
    """The served model's identity (/metadata), after /readyz says the service is ready."""
    assert deployed.https("api.", "/readyz").status == 200
    metadata = deployed.https("api.", "/metadata").json()
    return {key: metadata[key] for key in ("name", "version", "bento_model", "run_id")}


def compose_exec(deployed: Deployed, service: str, *argv: str) -> str:
    """A command in one of the stack's containers on the host (`docker compose exec`)."""
    return deployed.rehearsal.docker.run(
        "exec", deployed.host.container, "docker", "compose", "-p", "cepage", "exec", "-T",
        service, *argv, timeout=120,
    ).stdout  # fmt: skip


def mlflow_tables(deployed: Deployed) -> int:
    count = compose_exec(
        deployed, "postgres", "psql", "-U", "mlflow", "-d", "mlflow", "-tAc",
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )  # fmt: skip
    return int(count.strip())


def backup_lib(deployed: Deployed, script: str) -> str:
    """A bash script on the host with the backup scripts' settings and remotes (as root)."""
    return deployed.rehearsal.docker.run(
        "exec", deployed.host.container, "bash", "-c",
        f". /usr/local/sbin/cepage-backup-lib && {script}",
    ).stdout  # fmt: skip


@dataclass(frozen=True)
class BackedUp:
    before: dict[str, Any]
    """registry_state() before the backup."""
    serving: dict[str, Any]
    artifacts: dict[str, int]
    """The artifacts bucket's objects (key -> size) at the backup."""
    seconds: float
    result: str
    """The unit's Result= after its run."""
    journal: str
    dumps: list[str]
    """What `cepage-restore --list` lists (through the crypt remote)."""
    sealed_artifacts: list[str]
    """The artifacts' copy in the backups bucket, through the crypt remote."""
    bucket: dict[str, int]
    """The backups bucket's objects as stored (key -> size)."""


@pytest.fixture(scope="module")
def backed_up(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> BackedUp:
    """Models registered through the proxy, then the host's own backup unit run once."""
    directory = tmp_path_factory.mktemp("restore-before")
    serving = served(deployed)
    with mlflow_through_proxy(deployed, directory) as client:
        register_models(client, directory, serving)
        before = registry_state(client, directory / "artifacts")
    buckets = deployed.storage.buckets
    artifacts = deployed.storage.objects(buckets["mlflow_artifacts"])
    started_at = time.monotonic()
    # Type=oneshot: `systemctl start` returns when the job has finished (or failed).
    deployed.rehearsal.docker.run(
        "exec", deployed.host.container, "systemctl", "start", "cepage-backup.service",
        timeout=900, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started_at
    result = deployed.sh("systemctl show -p Result --value cepage-backup.service").strip()
    journal = deployed.sh("journalctl -u cepage-backup.service --no-pager -n 60 || true")
    dumps = deployed.sh("/usr/local/sbin/cepage-restore --list || true").split()
    sealed = backup_lib(
        deployed, 'rclone lsf -R --files-only "$CEPAGE_BACKUP_DESTINATION/mlflow-artifacts" || true'
    ).split()
    bucket = deployed.storage.objects(buckets["backups"])
    return BackedUp(before, serving, artifacts, seconds, result, journal, dumps, sealed, bucket)


def test_backup_puts_the_dump_and_the_artifacts_in_the_bucket(backed_up: BackedUp) -> None:
    assert backed_up.result == "success", backed_up.journal
    assert backed_up.seconds < 300, backed_up.seconds
    # What was backed up is what MLflow holds: two versions of real model files, in the bucket.
    versions = backed_up.before[MODEL]["versions"]
    assert set(versions) == {"1", "2"}, backed_up.before
    assert all("model/MLmodel" in v["artifacts"] for v in versions.values())
    assert backed_up.artifacts and all(k.startswith("mlflow/") for k in backed_up.artifacts)
    # The dump and every artifact are in the backups bucket (read through the crypt remote)...
    [dump] = backed_up.dumps
    assert dump.startswith("mlflow-") and dump.endswith(".dump"), backed_up.dumps
    expected = {key.removeprefix("mlflow/") for key in backed_up.artifacts}
    assert set(backed_up.sealed_artifacts) == expected
    # ... and the bucket holds only ciphertext: no name of a dump or an artifact in clear.
    assert len(backed_up.bucket) == len(expected) + 1, sorted(backed_up.bucket)
    assert not any(
        part in key for key in backed_up.bucket for part in ("postgres", ".dump", "MLmodel")
    ), sorted(backed_up.bucket)


@dataclass(frozen=True)
class Restored:
    tables_after_wipe: int
    objects_wiped: int
    objects_after_wipe: int
    run: Run
    seconds: float
    after: dict[str, Any]
    artifacts: dict[str, int]
    serving: dict[str, Any]


@pytest.fixture(scope="module")
def restored(
    deployed: Deployed, backed_up: BackedUp, tmp_path_factory: pytest.TempPathFactory
) -> Restored:
    """A disaster (MLflow's database emptied, its artifacts deleted), then `make restore`."""
    assert backed_up.result == "success", backed_up.journal
    bucket = deployed.storage.buckets["mlflow_artifacts"]
    compose_exec(
        deployed, "postgres", "psql", "-U", "mlflow", "-d", "mlflow", "-v", "ON_ERROR_STOP=1",
        "-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public;",
    )  # fmt: skip
    tables = mlflow_tables(deployed)
    wiped = deployed.storage.empty(bucket)
    left = len(deployed.storage.objects(bucket))
    started_at = time.monotonic()
    run = deployed.deployer.deploy(action="restore", timeout=900)
    seconds = time.monotonic() - started_at
    run.assert_ok()
    directory = tmp_path_factory.mktemp("restore-after")
    with mlflow_through_proxy(deployed, directory) as client:
        after = registry_state(client, directory / "artifacts")
    return Restored(
        tables, wiped, left, run, seconds, after, deployed.storage.objects(bucket),
        served(deployed),
    )  # fmt: skip


def test_the_wipe_left_nothing_to_find(restored: Restored) -> None:
    assert restored.tables_after_wipe == 0
    assert restored.objects_wiped > 0 and restored.objects_after_wipe == 0


def test_restore_brings_back_models_versions_aliases_and_artifacts(
    deployed: Deployed, backed_up: BackedUp, restored: Restored
) -> None:
    assert "restored mlflow-" in restored.run.output, restored.run.output[-3000:]
    # The operator's key was on the host for the restore only (restore.yml's tempfile).
    assert deployed.sh("ls /tmp | grep -c 'restore-key$' || true").strip() == "0"
    assert restored.seconds < 600, restored.seconds
    before, after = backed_up.before, restored.after
    assert after[MODEL]["aliases"] == {"champion": "2", "previous": "1"}
    assert after == before
    # The artifacts bucket is again exactly what it was (keys and sizes).
    assert restored.artifacts == backed_up.artifacts
    print(
        f"restore drill: backup {backed_up.seconds:.1f} s, restore {restored.seconds:.1f} s, "
        f"{sum(len(v['artifacts']) for v in after[MODEL]['versions'].values())} artifact files "
        f"in {len(after[MODEL]['versions'])} versions identical"
    )


def test_the_service_serves_the_same_champion_after_the_restore(
    deployed: Deployed, backed_up: BackedUp, restored: Restored
) -> None:
    assert restored.serving == backed_up.serving
    champion = restored.after[MODEL]["versions"][restored.after[MODEL]["aliases"]["champion"]]
    assert champion["tags"]["served_bento_model"] == restored.serving["bento_model"]
    metadata = deployed.https("api.", "/metadata").json()
    record = {f["name"]: f["median"] for f in metadata["feature_schema"]["features"]}
    response = deployed.https("api.", "/predict", method="POST", body={"records": [record]})
    assert response.status == 200, response.body[:500]
