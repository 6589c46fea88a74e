#!/usr/bin/env bash
# Policy tools for `make infra-compliance` (scripts/plan-report.sh, the ci workflow's plan job) and
# the Terraform tests, each in its own venv under the cache (not in .venv; on every machine, online
# too, because their pins clash with the project's lock):
#   - terraform-compliance pins IPython 7.16 and radish-bdd, which the project's lock cannot take;
#   - checkov pins packaging<24, which pytest (>=24) in the project's lock cannot take.
# Idempotent: a venv is (re)made only when its pinned version is missing. Prints nothing but
# errors and the two executables' paths, one per line.
#
# Usage: scripts/iac-tools.sh            (needs python3 >= 3.11 on PATH, or $PYTHON)
set -euo pipefail

CACHE="${CEPAGE_CACHE:-$HOME/.cache/cepage}"
VENVS="$CACHE/venvs"
PYTHON="${PYTHON:-python3}"

# name  pip requirement  executable
TOOLS=(
  "terraform-compliance terraform-compliance==1.16.0 terraform-compliance"
  "checkov checkov==3.3.30 checkov"
)

for line in "${TOOLS[@]}"; do
  read -r name requirement exe <<<"$line"
  venv="$VENVS/$name"
  stamp="$venv/.cepage-$requirement"
  if [[ ! -f "$stamp" || ! -x "$venv/bin/$exe" ]]; then
    echo "==> Installing $requirement into $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$requirement" >&2
    touch "$stamp"
  fi
  echo "$venv/bin/$exe"
done
