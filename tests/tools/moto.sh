#!/usr/bin/env bash
# An S3-compatible server for the tests that need one (tests/support/s3.py: the prediction log's
# S3 test, make teardown's bucket emptying): moto's standalone server, in its own venv under the
# cache, not in .venv, so that its pins never steer the project's lock (as scripts/iac-tools.sh
# gives terraform-compliance and checkov venvs of their own).
# Idempotent: the venv is (re)made only when the pinned version is missing. Prints nothing but
# errors and, on the last line, the path of the `moto_server` executable.
#
# Usage: tests/tools/moto.sh            (needs python3 >= 3.11 on PATH, or $PYTHON)
set -euo pipefail

CACHE="${CEPAGE_CACHE:-$HOME/.cache/cepage}"
PYTHON="${PYTHON:-python3}"
REQUIREMENT="moto[server]==5.2.5"
venv="$CACHE/venvs/moto"
stamp="$venv/.cepage-$REQUIREMENT"

if [[ ! -f "$stamp" || ! -x "$venv/bin/moto_server" ]]; then
  echo "==> Installing $REQUIREMENT into $venv" >&2
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$REQUIREMENT" >&2
  touch "$stamp"
fi
echo "$venv/bin/moto_server"
