"""The rehearsal's object storage: a real S3-compatible server on its network (issue 13, check 4).

Scaleway Object Storage stands in as moto's standalone server (``moto[server]``, the pin of
tests/tools/moto.sh: a real S3 HTTP API, state in memory), in a container of its own built on the
suite's base image (pip reaches PyPI from a build there: tests/tools/base_image.py bakes in the
host's CA bundle). The image is tagged by its Dockerfile, the pin and the base image, and built
once per engine (~20 s cold). The container joins the rehearsal's network with the alias
``rehearsal-s3`` on port 9000, is published on 127.0.0.1 for the tests' own client, and is
registered in ``Rehearsal.containers``, so teardown removes it. The buckets are made as Terraform
makes them (iac/storage.tf): the inventory's three names, the backups bucket versioned. moto
accepts any key, so the vault's keys (hosts, backup, operator) all work; it checks no policy.

Two ways in, as Scaleway's one public name gives both: the hosts' rclone jobs (backups, the
production log) use the name, virtual-host style as rclone's Scaleway provider always does
(``BUCKET.rehearsal-s3``: one network alias per bucket, which moto reads as the bucket); MLflow,
in the host's own Docker engine, uses the address, because a container there cannot resolve the
rehearsal network's names (Debian's docker.io 20.10 drops the host's 127.0.0.11 resolver from a
nested container's upstream DNS: tried, "No address associated with hostname"); boto3 talks
path style to an address. ``group_vars`` says which setting gets which. Nothing runs at import
time.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.rehearsal import hosts
from tests.rehearsal.hosts import Rehearsal
from tests.support.procs import require

ALIAS = "rehearsal-s3"
PORT = 9000
MOTO_SH = hosts.TOOLS / "moto.sh"
# Any key works with moto; these are the tests' own, for the tests' own client.
ACCESS_KEY = "SCWREHEARSALTESTS001"
SECRET_KEY = "4a1b0c2d-0000-4000-8000-0000000000c1"  # pragma: allowlist secret
# The buckets Terraform versions (iac/storage.tf): the backups, so that an overwritten or deleted
# backup object is kept as an older version.
VERSIONED = ("backups",)

DOCKERFILE = """\
# moto's S3 server (tests/rehearsal/s3.py), in a venv of its own like tests/tools/moto.sh's.
ARG BASE_IMAGE=python:3.11-slim
FROM ${{BASE_IMAGE}}
RUN python3 -m venv /opt/moto \\
 && /opt/moto/bin/pip install -q --no-cache-dir --disable-pip-version-check "{requirement}"
EXPOSE {port}
CMD ["/opt/moto/bin/moto_server", "-H", "0.0.0.0", "-p", "{port}"]
"""


def requirement() -> str:
    """moto's pin, from its one home (tests/tools/moto.sh's REQUIREMENT)."""
    match = re.search(r'^REQUIREMENT="([^"]+)"$', MOTO_SH.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"no REQUIREMENT=... in {MOTO_SH}")
    return match.group(1)


def image(docker: hosts.Docker) -> str:
    """The server's image, rehearsal-s3:HASH (built once: the tag names what went into it)."""
    dockerfile = DOCKERFILE.format(requirement=requirement(), port=PORT)
    base_id = docker.run("image", "inspect", "--format", "{{.Id}}", hosts.BASE_IMAGE).stdout
    digest = hashlib.sha256(dockerfile.encode()).hexdigest()[:12]
    tag = f"rehearsal-s3:{digest}-{base_id.strip().split(':')[-1][:8]}"
    if docker.has_image(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="rehearsal-s3-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(dockerfile)
        built = docker.run(
            "build", "-q", "--build-arg", f"BASE_IMAGE={hosts.BASE_IMAGE}", "-t", tag, tmp,
            timeout=900, check=False,
        )  # fmt: skip
    require(
        built.returncode == 0,
        f"the rehearsal's S3 server (moto) cannot be built (PyPI from a build?):\n"
        f"{built.stdout[-2000:]}{built.stderr[-2000:]}",
    )
    # Builds of earlier versions go (their layers stay in the build cache), as build_cached does.
    listed = docker.run("images", "--format", "{{.Repository}}:{{.Tag}}", "rehearsal-s3")
    for old in set(listed.stdout.split()) - {tag}:
        docker.run("rmi", old, check=False)
    return tag


def terraform_vars(rehearsal: Rehearsal) -> dict[str, Any]:
    """The inventory's shared values (Terraform's output): the buckets' names, the region."""
    values: dict[str, Any] = hosts.inventory(rehearsal, "", [])["all"]["vars"]
    return values


@dataclass(frozen=True)
class S3Server:
    container: str
    ip: str
    """Its address on the rehearsal's network."""
    local_port: int
    """Where this machine reaches it (127.0.0.1)."""
    buckets: Mapping[str, str]
    """The environment's buckets by purpose (mlflow_artifacts, backups, production_log)."""
    region: str

    @property
    def endpoint(self) -> str:
        """By name: what the hosts themselves use (Terraform's output has the same)."""
        return f"http://{ALIAS}:{PORT}"

    @property
    def address_endpoint(self) -> str:
        """By address: what the containers in the hosts' own engines (MLflow) can reach."""
        return f"http://{self.ip}:{PORT}"

    def client(self) -> Any:
        """A boto3 S3 client to it, from this machine (boto3 comes with moto in the dev extra)."""
        import boto3  # only when used: heavy

        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.local_port}",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=self.region,
        )

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """The bucket's current objects under ``prefix``: key -> size."""
        found: dict[str, int] = {}
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        for page in pages:
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return found

    def empty(self, bucket: str) -> int:
        """Delete every object of ``bucket`` (every version of a versioned one); how many went."""
        client = self.client()
        gone = 0
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            if entries:
                client.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": e["Key"], "VersionId": e["VersionId"]}
                                        for e in entries]},
                )  # fmt: skip
                gone += len(entries)
        return gone


def start(rehearsal: Rehearsal) -> S3Server:
    """The server on the rehearsal's network (removed by its teardown), with the buckets made."""
    docker = rehearsal.docker
    tag = image(docker)
    name = rehearsal.name("s3")
    rehearsal.containers.append(name)
    values = terraform_vars(rehearsal)
    # BUCKET.rehearsal-s3 for each bucket: the names virtual-host-style requests go to.
    aliases = [ALIAS, *(f"{bucket}.{ALIAS}" for bucket in values["cepage_buckets"].values())]
    argv = ["run", "-d", "--name", name, "--network", rehearsal.network]
    for alias in aliases:
        argv += ["--network-alias", alias]
    docker.run(*argv, "-p", f"127.0.0.1::{PORT}", tag)
    port = hosts.published(docker, name, PORT)
    hosts.wait_http(f"http://127.0.0.1:{port}/moto-api/", timeout=60)
    ip = json.loads(docker.run("inspect", name).stdout)[0]["NetworkSettings"]["Networks"][
        rehearsal.network
    ]["IPAddress"]
    server = S3Server(name, ip, port, dict(values["cepage_buckets"]), values["cepage_region"])
    client = server.client()
    for purpose, bucket in server.buckets.items():
        # In the environment's region, as Scaleway's (moto refuses a bucket without one there).
        location = {"LocationConstraint": server.region}
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
        if purpose in VERSIONED:
            client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
    return server


def group_vars(server: S3Server) -> dict[str, Any]:
    """The inventory's settings for this server (see the module docstring for why two)."""
    return {
        # MLflow's artifact store (the stack's .env): reached from a container of the host's
        # own engine, which resolves none of the rehearsal network's names.
        "cepage_s3_endpoint": server.address_endpoint,
        # The hosts' own rclone jobs: by name, virtual-host style, as with Scaleway.
        "cepage_backup_s3_endpoint": server.endpoint,
        "cepage_production_log_s3_endpoint": server.endpoint,
    }


def write_group_vars(inventory_dir: Path, server: S3Server) -> None:
    """``group_vars(server)`` into an inventory folder (deploy.prepare's), beside its others."""
    target = inventory_dir / "group_vars" / "all" / "object-storage.yml"
    target.write_text(
        "# The rehearsal's S3-compatible server (tests/rehearsal/s3.py: why two endpoints).\n"
        + yaml.safe_dump(group_vars(server), sort_keys=False)
    )
