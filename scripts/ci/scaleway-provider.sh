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
# Usage: scripts/ci/scaleway-provider.sh [--print-config]
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
  command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null 2>&1 || {
    echo "scaleway-provider.sh: the Go toolchain (>= 1.21; the provider needs 1.26, which Go fetches itself) is needed to build the provider" >&2
    exit 1
  }
  mkdir -p "$CACHE/go/mod" "$CACHE/go/build" "$DEST"
  build_dir="$(mktemp -d "$TF_CACHE/build.XXXXXX")"
  trap 'rm -rf "$build_dir"' EXIT
  echo "==> Building terraform-provider-scaleway v$VERSION from source (cold: about 5-10 min on 2 cores)" >&2
  start=$SECONDS
  export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" \
    GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0
  module="github.com/scaleway/terraform-provider-scaleway/v2"
  # `go install MODULE@VERSION` also asks the proxy for the module's version list (to warn about
  # deprecation), which the proxy we reach may refuse: download the exact version, then build it
  # inside its own module directory with its own go.mod and go.sum.
  src="$(go mod download -json "$module@v$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$src" ]] || { echo "scaleway-provider.sh: could not download $module@v$VERSION" >&2; exit 1; }
  # nice: a cold build takes both cores for minutes; let interactive work and other tests go first.
  (cd "$src" && nice -n 19 go build -mod=readonly -trimpath \
    -ldflags "-s -w -X $module/version.Version=v$VERSION" \
    -o "$build_dir/terraform-provider-scaleway" .) >&2
  mv "$build_dir/terraform-provider-scaleway" "$BINARY.tmp"
  mv "$BINARY.tmp" "$BINARY"
  echo "==> Built in $((SECONDS - start)) s: $BINARY" >&2
fi

# Rewritten each time (cheap) so a moved cache still gives a correct config.
cat >"$CONFIG.tmp" <<EOF
# Written by scripts/ci/scaleway-provider.sh: install providers from the local mirror only.
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
