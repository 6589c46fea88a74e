#!/usr/bin/env bash
# Offline test/CI shim: actionlint (the GitHub Actions workflow linter) built from source into
# ~/.cache/cepage/bin (cold: about 1 min on 2 cores; warm: instant). Prints its path last.
# Usage: tests/tools/actionlint.sh
set -euo pipefail
VERSION="${ACTIONLINT_VERSION:-1.7.12}"
exec bash "$(dirname "$0")/go-tool.sh" actionlint github.com/rhysd/actionlint "$VERSION" \
  ./cmd/actionlint "-X github.com/rhysd/actionlint.version=v$VERSION"
