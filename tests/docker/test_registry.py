"""scripts/images.sh against a real registry (Debian's docker-registry: distribution 2.8), and the
prod compose file's digest pins pulled by a real engine.

What the release and deploy workflows rely on: pushes never overwrite a tag with other content,
`digests` reports the digests the registry serves, `copy` and `alias` keep them byte for byte
(so a signature checked in dev's registry holds for prod's copy), and an image pinned by digest
is the one pulled even after its tag was moved to other content.

The images are tiny (the base image plus a label each): the script is under test, not the
builds. skopeo talks to the plain-HTTP local registry with CEPAGE_REGISTRY_TLS_VERIFY=false; the
engine trusts 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.docker.conftest import COMPOSE_FILE, Docker, compose_env
from tests.docker.test_config import PROD, SECRETS
from tests.support.procs import ROOT, free_port, require_binary
from tests.tools.base_image import BASE_TAG

pytestmark = [pytest.mark.docker]

IMAGES_SH = ROOT / "scripts" / "images.sh"
TAG = "abc123-m1"


@dataclass(frozen=True)
class Registry:
    address: str
    env: dict[str, str]

    def images(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", str(IMAGES_SH), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"images.sh {args}:\n{done.stdout}\n{done.stderr}"
        return done

    def digests(self, prefix: str, tag: str) -> dict[str, str]:
        parsed: dict[str, str] = json.loads(self.images("digests", prefix, tag).stdout)
        return parsed


def names() -> list[str]:
    done = subprocess.run(
        ["bash", str(IMAGES_SH), "names"], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def build_labelled(docker: Docker, ref: str, label: str, tmp: Path) -> None:
    context = tmp / label.replace("/", "-").replace(":", "-").replace(".", "-")
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(f"FROM {BASE_TAG}\nLABEL cepage.test={json.dumps(label)}\n")
    docker.run("build", "-q", "-t", ref, str(context), timeout=300)


def release(docker: Docker, registry: Registry, prefix: str, tag: str, tmp: Path) -> dict[str, str]:
    """Build one labelled image per name as PREFIX/NAME:TAG, push them all, return the digests."""
    for name in names():
        build_labelled(docker, f"{prefix}/{name}:{tag}", f"{prefix}/{name}:{tag}", tmp)
    registry.images("push", prefix, tag)
    return registry.digests(prefix, tag)


@pytest.fixture(scope="module")
def registry(docker: Docker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    binary = require_binary("docker-registry")
    require_binary("skopeo")
    base = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = base / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(base / "data")}},
                "http": {"addr": address},
            }
        )
    )
    log = (base / "registry.log").open("w")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://{address}/v2/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, (base / "registry.log").read_text()
            assert time.monotonic() < deadline, "the registry did not answer within 30 s"
            time.sleep(0.2)
        env = {**docker.env, "CEPAGE_REGISTRY_TLS_VERIFY": "false", "HOME": str(base)}
        env["PATH"] = os.environ["PATH"]
        yield Registry(address=address, env=env)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        # The engine's cache outlives the run: drop this registry's tags (the layers are the
        # base image's, kept).
        refs = docker.run("images", "--format", "{{.Repository}}:{{.Tag}}", check=False)
        mine = [r for r in refs.stdout.split() if r.startswith(f"{address}/")]
        dangling = [r.split(":<none>")[0] for r in mine if r.endswith(":<none>")]
        tagged = [r for r in mine if not r.endswith(":<none>")]
        if tagged:
            docker.run("image", "rm", "-f", *tagged, check=False)
        for repository in dangling:
            ids = docker.run("images", "-q", repository, check=False).stdout.split()
            if ids:
                docker.run("image", "rm", "-f", *ids, check=False)


def test_push_is_immutable_and_digests_are_the_registrys(
    docker: Docker, registry: Registry, tmp_path: Path
) -> None:
    prefix = f"{registry.address}/cepage-dev"
    digests = release(docker, registry, prefix, TAG, tmp_path)
    assert sorted(digests) == sorted(names())
    for name, digest in digests.items():
        # What the engine recorded when it pushed: the registry's manifest digest.
        repo_digests = docker.run(
            "image", "inspect", "--format", "{{json .RepoDigests}}", f"{prefix}/{name}:{TAG}"
        ).stdout
        assert f"{prefix}/{name}@{digest}" in json.loads(repo_digests)
    assert len(set(digests.values())) == len(digests)  # one image each, labels differ

    again = registry.images("push", prefix, TAG)
    assert again.stdout.count("already pushed") == len(names())

    # Other content under a released tag is refused, and the registry keeps the released image.
    build_labelled(docker, f"{prefix}/service:{TAG}", "service-2", tmp_path)
    refused = registry.images("push", prefix, TAG, check=False)
    assert refused.returncode == 1 and "tags are immutable" in refused.stderr
    assert registry.digests(prefix, TAG) == digests

    missing = registry.images("digests", prefix, "never-pushed", check=False)
    assert missing.returncode == 1 and f"missing: {prefix}/" in missing.stderr
    assert registry.images("exists", prefix, "never-pushed", check=False).returncode == 1
    assert registry.images("exists", prefix, TAG).returncode == 0


def test_copy_and_alias_keep_every_digest(
    docker: Docker, registry: Registry, tmp_path: Path
) -> None:
    dev, prod = f"{registry.address}/copy-dev", f"{registry.address}/copy-prod"
    released = release(docker, registry, dev, TAG, tmp_path)

    registry.images("copy", dev, prod, TAG)
    assert registry.digests(prod, TAG) == released
    assert registry.images("copy", dev, prod, TAG).stdout.count("already there") == len(released)

    registry.images("alias", prod, TAG, "1.4.0")
    assert registry.digests(prod, "1.4.0") == released

    # A tag that exists with other content at the destination is never overwritten.
    release(docker, registry, dev, "other", tmp_path)
    clash = registry.images("alias", dev, "other", TAG, check=False)
    assert clash.returncode == 1 and "tags are immutable" in clash.stderr
    assert registry.digests(dev, TAG) == released


def test_the_prod_compose_file_pulls_the_pinned_digest_after_the_tag_moved(
    docker: Docker, registry: Registry, tmp_path: Path
) -> None:
    prefix = f"{registry.address}/pinned"
    released = release(docker, registry, prefix, TAG, tmp_path)
    released_id = docker.image_id(f"{prefix}/service:{TAG}")

    # Someone with push rights moves the tag (plain docker push, not images.sh).
    build_labelled(docker, f"{prefix}/service:{TAG}", "service-moved", tmp_path)
    docker.run("push", f"{prefix}/service:{TAG}", timeout=300)
    assert registry.digests(prefix, TAG)["service"] != released["service"]
    docker.run("image", "rm", f"{prefix}/service:{TAG}")
    docker.run("image", "rm", released_id or "", check=False)

    # What the deploy writes into .env (playbooks/roles/cepage_stack/templates/env.j2).
    pins = {f"CEPAGE_{name.upper()}_DIGEST": f"@{digest}" for name, digest in released.items()}
    compose = require_binary("docker-compose")
    env = compose_env(**SECRETS, **{**PROD, "CEPAGE_IMAGE_PREFIX": prefix, "CEPAGE_IMAGE_TAG": TAG})
    env.update(pins)
    prod_file = COMPOSE_FILE.with_name("docker-compose.prod.yml")
    done = subprocess.run(
        [compose, "-f", str(COMPOSE_FILE), "-f", str(prod_file), "config"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    for name, digest in released.items():
        assert services[name]["image"] == f"{prefix}/{name}:{TAG}@{digest}"

    docker.run("pull", "-q", services["service"]["image"], timeout=300)
    label = docker.run(
        "image", "inspect", "--format", '{{index .Config.Labels "cepage.test"}}',
        services["service"]["image"],
    ).stdout.strip()  # fmt: skip
    assert label == f"{prefix}/service:{TAG}"
