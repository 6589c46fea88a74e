"""Milestone 2 of the rehearsal: the real site.yml, services on, in the dev layout; check 1.

One host (systemd, its own Docker engine installed by the roles from Debian's docker.io) gets
`make deploy`'s path (playbooks/deploy.sh) twice with Terraform's inventory shape, the dev
group_vars and an encrypted vault; the project's images come from the local registry under the
environment's prefix, the upstream ones through it as a Docker Hub mirror (real when this machine
can pull them, else stand-ins: the run's summary says which). Then, through the proxy on the
host's 443 published on 127.0.0.1, with TLS verified against the proxy's own CA: the API's
/readyz and a prediction, the UI, and MLflow behind basic auth (401 without, 200 with).

What differs from Scaleway, and why, is tests/rehearsal/deploy.py's REHEARSAL_VARS and
images.py's MLflow workaround (a bug this rehearsal found). Grafana is a placeholder that only
answers its health check: no Grafana can be had here. Time: ~6 min warm on 2 cores (images
built, Go tools cached): push ~2 min, first apply ~2.5 min, second ~1.5 min.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.ansible.conftest import Run
from tests.docker.conftest import Images
from tests.rehearsal import deploy, hosts, web
from tests.rehearsal import images as pushing
from tests.rehearsal.conftest import UPSTREAM_REPORT, started

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

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
        project = {"service": images.service, "ui": images.ui, "mlflow": images.mlflow}
        pushed = pushing.push_all(rehearsal, project, TAG)
        UPSTREAM_REPORT[:] = [f"  {u.ref}: {u.source}" for u in pushed.upstream]
        base = tmp_path_factory.mktemp("rehearsal-dev")
        deployer = deploy.prepare(rehearsal, base, TAG, [rehearsal.subnet])
        first = deployer.deploy()
        first.assert_ok()
        second = deployer.deploy("-v")  # -v: a changed task's result says what changed
        host = rehearsal.host(HOST)
        ca = rehearsal.docker.run(
            "exec", host.container, "docker", "exec", "cepage-proxy-1",
            "cat", "/data/caddy/pki/authorities/local/root.crt",
        ).stdout  # fmt: skip
        yield Deployed(rehearsal, host, pushed, first, second, ca)


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
