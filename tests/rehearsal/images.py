"""The images a rehearsal's hosts pull, put in its registry as the real registries would hold them.

* The project's images (service, ui, mlflow, retrain: tests/docker's ``images`` fixture builds
  them) and the proxy, built here from compose/caddy/Dockerfile unchanged, pushed as
  ``cepage-ENV/NAME:TAG`` (Terraform's registry namespace of the environment).
* The upstream images compose names (postgres, prometheus, alertmanager, grafana, python), pushed
  under their Docker Hub names, which the hosts' engines pull through the registry as a mirror:
  the real image when this machine can pull it, else a stand-in from tests/tools/rehearsal/
  (``Upstream.source`` says which).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from stack.processes import ROOT
from tests.rehearsal import hosts
from tests.rehearsal.hosts import Rehearsal, Upstream

COMPOSE = ROOT / "compose"
CADDY_DOCKERFILE = COMPOSE / "caddy" / "Dockerfile"
# Profiles the deploy never turns on: their images are not pulled (node_exporter runs on the
# hosts themselves; the retrain job is run by the retrain workflow).
UNUSED_PROFILES = {"host-metrics"}


def dockerfile_arg(path: Path, name: str) -> str:
    """The default of ``ARG NAME=value`` in a Dockerfile (the value's one home)."""
    match = re.search(rf"^ARG {name}=(\S+)$", path.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"no ARG {name}=... in {path}")
    return match.group(1)


def upstream_refs() -> list[str]:
    """The upstream images of compose's services (with `${VAR:-default}` at their default)."""
    services = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())["services"]
    refs = []
    for service in services.values():
        image = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", service["image"])
        if "CEPAGE_IMAGE_PREFIX" in service["image"] or set(service.get("profiles", [])) & (
            UNUSED_PROFILES
        ):
            continue
        refs.append(image)
    return sorted(set(refs))


@dataclass(frozen=True)
class Pushed:
    tag: str
    project: dict[str, str]
    """Our images by name -> the reference the hosts pull."""
    upstream: list[Upstream]
    local: dict[str, str]
    """Our images by name -> the image in this machine's engine (the proxy included)."""


def build_proxy(rehearsal: Rehearsal, tag: str) -> tuple[str, list[Upstream]]:
    """compose/caddy/Dockerfile built unchanged, on its upstream images or their stand-ins."""
    base = dockerfile_arg(CADDY_DOCKERFILE, "BASE_IMAGE")
    builder = dockerfile_arg(CADDY_DOCKERFILE, "BUILDER_IMAGE")
    docker = rehearsal.docker
    used_base = hosts.upstream(docker, base)
    extra = {} if docker.has_image(builder) else {"caddy": hosts.caddy_binary()}
    used_builder = hosts.upstream(docker, builder, extra)
    local = f"rehearsal-proxy:{tag}"
    argv = ["build", "-q", "-f", str(CADDY_DOCKERFILE),
            "--build-arg", f"BASE_IMAGE={used_base.local}",
            "--build-arg", f"BUILDER_IMAGE={used_builder.local}",
            "-t", local, str(COMPOSE / "caddy")]  # fmt: skip
    built = docker.run(*argv, timeout=1800, check=False)
    if built.returncode != 0 and "returned a non-zero code: 141" in built.stdout + built.stderr:
        # FOUND BY THE REHEARSAL, to fix in compose/caddy/Dockerfile: under `pipefail`,
        # `caddy list-modules | grep -q ...` fails with SIGPIPE (141) whenever grep exits on its
        # match before Caddy has written its last lines: a race, so the build is tried again.
        built = docker.run(*argv, timeout=1800, check=False)
    if built.returncode != 0:
        raise RuntimeError(
            f"building the proxy failed:\n{built.stdout[-3000:]}{built.stderr[-3000:]}"
        )
    return local, [used_base, used_builder]


def push_all(rehearsal: Rehearsal, project: Mapping[str, str], tag: str) -> Pushed:
    """Push ``project`` ({name: local image}), the proxy and the upstream images (or stand-ins)."""
    assert rehearsal.registry is not None
    proxy, caddy_images = build_proxy(rehearsal, tag)
    rehearsal.pushed.append(proxy)  # our build's tag: removed with the rehearsal
    local = {**project, "proxy": proxy}
    pulled = push_release(rehearsal, local, tag)
    used = []
    for ref in upstream_refs():
        image = hosts.upstream(rehearsal.docker, ref)
        hosts.push(rehearsal, image.local, hosts.mirror_name(ref))
        used.append(image)
    return Pushed(tag=tag, project=pulled, upstream=[*used, *caddy_images], local=local)


def push_release(rehearsal: Rehearsal, local: Mapping[str, str], tag: str) -> dict[str, str]:
    """Push our images ({name: local image}) as cepage-ENV/NAME:TAG; what the hosts pull."""
    assert rehearsal.registry is not None
    env = rehearsal.layout
    pulled: dict[str, str] = {}
    for name, image in local.items():
        hosts.push(rehearsal, image, f"cepage-{env}/{name}:{tag}")
        pulled[name] = f"{rehearsal.registry.pull}/cepage-{env}/{name}:{tag}"
    return pulled


def derived(rehearsal: Rehearsal, base: str, tag: str, *instructions: str) -> str:
    """An image made FROM ``base`` with ``instructions`` (a new release, a broken one)."""
    local = f"{rehearsal.name('derived')}:{tag}"
    dockerfile = "\n".join([f"FROM {base}", *instructions]) + "\n"
    rehearsal.docker.run("build", "-q", "-t", local, "-", stdin_text=dockerfile, timeout=600)
    rehearsal.pushed.append(local)
    return local


def digests(rehearsal: Rehearsal, tag: str, path: Path) -> Path:
    """What the release workflow hands a prod deploy: `scripts/images.sh digests` of the tag's
    images in the registry (IMAGE_DIGESTS), written to ``path``."""
    assert rehearsal.registry is not None
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "images.sh"), "digests",
         f"{rehearsal.registry.push}/cepage-{rehearsal.layout}", tag],
        env={**os.environ, "CEPAGE_REGISTRY_TLS_VERIFY": "false"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip  # nosec B603 B607: the repository's own script, fixed arguments
    if done.returncode != 0:
        raise RuntimeError(f"images.sh digests failed:\n{done.stderr[-3000:]}")
    path.write_text(done.stdout)
    return path
