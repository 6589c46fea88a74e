#!/usr/bin/env bash
# Offline test/CI shim: build a Go command-line tool from source through the Go module proxy,
# cached outside the repo:
#
#   $CEPAGE_CACHE/go/{mod,build}                 GOMODCACHE, GOCACHE (shared with the provider build)
#   $CEPAGE_CACHE/bin/NAME-vX.Y.Z                the binary (versioned: a new version rebuilds)
#   $CEPAGE_CACHE/bin/NAME                       a link to it
#
# Warm: instant. Prints the binary's path on the last line. On a machine with internet, any
# install of the tool works the same (the tests look on PATH first).
#
# Usage: tests/tools/go-tool.sh [--out FILE] NAME MODULE VERSION PACKAGE [LDFLAGS]
#   e.g. tests/tools/go-tool.sh tflint github.com/terraform-linters/tflint 0.61.0 .
# --out FILE builds to FILE instead, with no link in bin/ (scaleway-provider.sh: a mirror's layout).
set -euo pipefail

OUT=""
if [[ "${1:-}" == --out && $# -ge 2 ]]; then
  OUT="$2"
  shift 2
fi
if (($# < 4)); then
  echo "usage: go-tool.sh [--out FILE] NAME MODULE VERSION PACKAGE [LDFLAGS]" >&2
  exit 2
fi
NAME="$1" MODULE="$2" VERSION="$3" PACKAGE="$4" LDFLAGS="${5:-}"
CACHE="${CEPAGE_CACHE:-$HOME/.cache/cepage}"
BIN_DIR="$CACHE/bin"
BINARY="${OUT:-$BIN_DIR/$NAME-v$VERSION}"

if [[ ! -x "$BINARY" ]]; then
  # Go on PATH, else where the official archive or .ci/deps (`make deps`) puts it.
  command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin:$CACHE/go/sdk/bin"
  command -v go >/dev/null 2>&1 || {
    echo "go-tool.sh: the Go toolchain (>= 1.21; Go fetches a newer one a module needs) is needed to build $NAME v$VERSION: make deps installs it" >&2
    exit 1
  }
  mkdir -p "$CACHE/go/mod" "$CACHE/go/build" "$(dirname "$BINARY")"
  echo "==> Building $NAME v$VERSION from source" >&2
  trap 'rm -f "$BINARY.tmp.$$"' EXIT
  start=$SECONDS
  export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" \
    GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0
  # `go install MODULE@VERSION` also asks the proxy for the module's version list (to warn about
  # deprecation), which the proxy we reach may refuse: download the exact version, then build it
  # inside its own module directory with its own go.mod and go.sum.
  src="$(go mod download -json "$MODULE@v$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$src" ]] || { echo "go-tool.sh: could not download $MODULE@v$VERSION" >&2; exit 1; }
  # nice: a cold build takes both cores for minutes; let interactive work and other tests go first.
  (cd "$src" && nice -n 19 go build -mod=readonly -trimpath -ldflags "-s -w $LDFLAGS" \
    -o "$BINARY.tmp.$$" "$PACKAGE") >&2
  mv "$BINARY.tmp.$$" "$BINARY"
  echo "==> Built in $((SECONDS - start)) s: $BINARY" >&2
fi
[[ -n "$OUT" ]] || ln -sfn "$NAME-v$VERSION" "$BIN_DIR/$NAME"
echo "$BINARY"
