#!/usr/bin/env bash
# Offline test/CI shim: make `terraform init` work without the Terraform registry.
#
# Builds the scaleway/scaleway provider from source with the Go toolchain (through the Go module
# proxy), lays it out as a filesystem mirror and writes a Terraform CLI config that installs
# providers from that mirror only. Everything lives in a cache outside the repo, so the second run
# (and CI on the same machine) takes a second:
#
#   $CEPAGE_CACHE/go/{mod,build}                            GOMODCACHE, GOCACHE
#   $CEPAGE_CACHE/terraform/mirror/registry.terraform.io/scaleway/scaleway/X.Y.Z/linux_amd64/
#   $CEPAGE_CACHE/terraform/terraformrc                     point TF_CLI_CONFIG_FILE here
#
# The provider version comes from iac/versions.tf (its one home). On the last line, prints the path
# of the CLI config. Users with internet never need this: plain `terraform init` downloads the
# provider from the registry.
#
# Usage: tests/tools/scaleway-provider.sh [--print-config]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${CEPAGE_CACHE:-$HOME/.cache/cepage}"
TF_CACHE="$CACHE/terraform"
MIRROR="$TF_CACHE/mirror"
CONFIG="$TF_CACHE/terraformrc"

VERSION="$(sed -n '/scaleway = {/,/}/s/^ *version *= *"\([0-9][0-9.]*\)".*/\1/p' "$ROOT/iac/versions.tf" | head -n1)"
if [[ -z "$VERSION" ]]; then
  echo "scaleway-provider.sh: no exact scaleway provider version found in iac/versions.tf" >&2
  exit 1
fi

case "$(uname -m)" in
  x86_64) ARCH=amd64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) ARCH="$(uname -m)" ;;
esac
OS="$(uname -s | tr '[:upper:]' '[:lower:]')"
DEST="$MIRROR/registry.terraform.io/scaleway/scaleway/$VERSION/${OS}_${ARCH}"
BINARY="$DEST/terraform-provider-scaleway_v$VERSION"

if [[ ! -x "$BINARY" ]]; then
  echo "==> terraform-provider-scaleway v$VERSION: cold build about 5-10 min on 2 cores" >&2
  module="github.com/scaleway/terraform-provider-scaleway/v2"
  bash "$(dirname "$0")/go-tool.sh" --out "$BINARY" terraform-provider-scaleway "$module" "$VERSION" . \
    "-X $module/version.Version=v$VERSION" >/dev/null
fi

# Rewritten each time (cheap) so a moved cache still gives a correct config.
cat >"$CONFIG.tmp" <<EOF
# Written by tests/tools/scaleway-provider.sh: install providers from the local mirror only.
plugin_cache_dir = "$TF_CACHE/plugin-cache"
disable_checkpoint = true
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.terraform.io/*/*"]
  }
}
EOF
mkdir -p "$TF_CACHE/plugin-cache"
mv "$CONFIG.tmp" "$CONFIG"
echo "$CONFIG"
