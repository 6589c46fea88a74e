#!/usr/bin/env bash
# An S3-compatible server for the prediction log's S3 test (tests/integration/test_prediction_log.py):
# moto's standalone server, in its own venv under the cache, not in .venv, because its botocore
# pins python-dateutil<3 and the project's lock has 4.x (the same reason scripts/iac-tools.sh gives
# terraform-compliance and checkov venvs of their own).
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
