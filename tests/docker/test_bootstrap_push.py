"""The bootstrap's image pushes (scripts/bootstrap.py) against a real registry.

Debian's docker-registry (distribution 2.8) and the private engine of tests/docker, the fixtures
of test_registry.py. The release step's push (every image under the release tag through
scripts/images.sh, then their digests written where the deploy step reads them) and the
MLflow-only push of the first deploy (same immutability rule) run for real; the images are tiny
labelled ones (the builds are tested elsewhere). Scaleway's registry itself (its `docker login`
with the secret key) needs an account and is not reached here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import bootstrap
from scripts.bootstrap import BootstrapError, Context, State
from tests.docker import test_registry
from tests.docker.conftest import Docker
from tests.docker.test_registry import Registry, build_labelled, names
from tests.support.procs import ROOT

pytestmark = [pytest.mark.docker]

# The real registry of test_registry.py (module-scoped: this module gets its own).
registry = test_registry.registry


def context(registry: Registry, tmp_path: Path) -> Context:
    state = State.load(tmp_path / "bootstrap" / "dev.json")
    return Context(env="dev", state=state, root=ROOT, environ=dict(registry.env))


def test_the_release_push_records_the_registrys_digests(
    docker: Docker, registry: Registry, tmp_path: Path
) -> None:
    prefix, tag = f"{registry.address}/bootstrap-dev", "0123456789ab-m1-bootstrap"
    for name in names():
        build_labelled(docker, f"{prefix}/{name}:{tag}", f"bootstrap {name}", tmp_path)
    ctx = context(registry, tmp_path)

    digests = bootstrap.push_release(ctx, prefix, tag)
    assert sorted(digests) == sorted(names())
    assert digests == registry.digests(prefix, tag), "the digests the registry serves"
    assert json.loads(ctx.digests_file.read_text()) == digests
    assert ctx.digests_file == tmp_path / "bootstrap" / "dev-digests.json"

    # A re-run (the step failed after the push) pushes nothing and records the same digests.
    assert bootstrap.push_release(ctx, prefix, tag) == digests


def test_the_mlflow_only_push_is_idempotent_and_never_overwrites(
    docker: Docker, registry: Registry, tmp_path: Path
) -> None:
    prefix, tag = f"{registry.address}/bootstrap-mlflow", "0123456789ab-bootstrap"
    ref = f"{prefix}/mlflow:{tag}"
    build_labelled(docker, ref, "bootstrap mlflow", tmp_path)
    ctx = context(registry, tmp_path)

    digest = bootstrap.push_once(ctx, ref)
    assert digest == bootstrap.remote_digest(ctx, ref) and digest.startswith("sha256:")
    assert bootstrap.push_once(ctx, ref) == digest, "already pushed: nothing to do"

    build_labelled(docker, ref, "other mlflow", tmp_path)
    with pytest.raises(BootstrapError, match="tags are immutable"):
        bootstrap.push_once(ctx, ref)
    assert bootstrap.remote_digest(ctx, ref) == digest
    assert bootstrap.remote_digest(ctx, f"{prefix}/mlflow:never-pushed") == ""


def test_a_half_pushed_tag_is_never_reused(
    docker: Docker, registry: Registry, tmp_path: Path
) -> None:
    prefix, base = f"{registry.address}/bootstrap-tags", "0123456789ab-m2-bootstrap"
    ctx = context(registry, tmp_path)
    every = names()
    assert bootstrap.image_names(ctx) == every
    assert bootstrap.free_tag(ctx, prefix, base, every) == (base, False), "nothing pushed yet"

    # An interrupted run pushed one image only: that tag is skipped, the next one is free.
    build_labelled(docker, f"{prefix}/ui:{base}", "interrupted ui", tmp_path)
    docker.run("push", f"{prefix}/ui:{base}", timeout=300)
    assert bootstrap.free_tag(ctx, prefix, base, every) == (f"{base}2", False)

    # Fully pushed: reused as it is (a re-run after the push builds nothing).
    tag = f"{base}2"
    for name in every:
        build_labelled(docker, f"{prefix}/{name}:{tag}", f"tags {name}", tmp_path)
    bootstrap.push_release(ctx, prefix, tag)
    assert bootstrap.free_tag(ctx, prefix, base, every) == (tag, True)
    assert ctx.state.value("release_tag") == tag
