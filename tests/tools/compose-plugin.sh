#!/usr/bin/env bash
# Offline test/CI shim: `docker compose` v2 for the rehearsal's hosts (tests/rehearsal/hosts.py),
# built from source with Go by tests/tools/go-tool.sh into the cache (cold ~2 min, warm instant),
# since Debian's docker.io ships no compose plugin and Docker's apt repository is unreachable here.
# The version has one home, tests/rehearsal/hosts.py (COMPOSE_VERSION). Prints the binary's path
# on the last line. Usage: tests/tools/compose-plugin.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-python3}" -c 'from tests.rehearsal.hosts import compose_plugin; print(compose_plugin())'
