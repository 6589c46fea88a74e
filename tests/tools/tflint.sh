#!/usr/bin/env bash
# Offline test/CI shim: tflint (with its bundled Terraform ruleset) built from source into
# ~/.cache/cepage/bin (cold: about 5 min on 2 cores; warm: instant). Prints its path last.
# Usage: tests/tools/tflint.sh
set -euo pipefail
VERSION="${TFLINT_VERSION:-0.61.0}"
exec bash "$(dirname "$0")/go-tool.sh" tflint github.com/terraform-linters/tflint "$VERSION" .
