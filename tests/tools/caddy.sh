#!/usr/bin/env bash
# Offline test/CI shim: the reverse proxy's Caddy, with the modules of compose/caddy/Dockerfile's
# xcaddy build (the standard ones plus github.com/mholt/caddy-ratelimit), built from source so the
# tests run the real compose/caddy/Caddyfile with no Docker registry:
#
#   tests/tools/caddy/                            its main package, go.mod and go.sum (-mod=readonly)
#   tests/tools/caddy/caddy-ratelimit/            the module's pinned commit, unmodified (the Go
#                                                 module proxy serves none of its commits after
#                                                 v0.1.0, which lacks the Caddyfile's ipv6_prefix)
#   $CEPAGE_CACHE/go/{mod,build}                  GOMODCACHE, GOCACHE (shared with go-tool.sh)
#   $CEPAGE_CACHE/bin/caddy-VERSION-ratelimit-COMMIT  the binary; $CEPAGE_CACHE/bin/caddy links to it
#
# The versions have one home, the Dockerfile's ARG lines: this script fails, saying what to change,
# when go.mod or the copied module disagree with them. Cold: a few minutes on 2 cores; warm:
# instant. Prints the binary's path on the last line.
# Usage: tests/tools/caddy.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SRC="$ROOT/tests/tools/caddy"
DOCKERFILE="$ROOT/compose/caddy/Dockerfile"
CACHE="${CEPAGE_CACHE:-$HOME/.cache/cepage}"
BIN_DIR="$CACHE/bin"

fail() { echo "caddy.sh: $*" >&2; exit 1; }
arg() { # the default value of `ARG NAME=value` in the Dockerfile
  sed -n "s/^[[:space:]]*ARG[[:space:]]\{1,\}$1=\"\{0,1\}\([^\"[:space:]]*\)\"\{0,1\}[[:space:]]*$/\1/p" "$DOCKERFILE" | head -1
}
CADDY_VERSION="$(arg CADDY_VERSION)"
RATELIMIT_VERSION="$(arg RATELIMIT_VERSION)"
[[ "$CADDY_VERSION" == v* ]] || fail "no 'ARG CADDY_VERSION=vX.Y.Z' in $DOCKERFILE"
[[ "$RATELIMIT_VERSION" =~ ^[0-9a-f]{40}$ ]] ||
  fail "no 'ARG RATELIMIT_VERSION=<40-hex commit>' in $DOCKERFILE"
SHORT="${RATELIMIT_VERSION:0:12}"

# --- One home for the versions: go.mod and the module's copy must be the Dockerfile's ---
required() { # the version go.mod requires of module $1
  awk -v m="$1" '$1 == "require" && $2 == m { print $3 } $1 == m && $2 ~ /^v/ { print $2 }' "$SRC/go.mod" | head -1
}
got="$(required github.com/caddyserver/caddy/v2)"
[[ "$got" == "$CADDY_VERSION" ]] ||
  fail "tests/tools/caddy/go.mod requires caddy $got, compose/caddy/Dockerfile builds $CADDY_VERSION: in tests/tools/caddy, run GOFLAGS=-mod=mod go get github.com/caddyserver/caddy/v2@$CADDY_VERSION && go mod tidy"
got="$(required github.com/mholt/caddy-ratelimit)"
[[ "$got" == *-"$SHORT" ]] ||
  fail "tests/tools/caddy/go.mod requires caddy-ratelimit $got, compose/caddy/Dockerfile builds commit $RATELIMIT_VERSION: put that commit's files in tests/tools/caddy/caddy-ratelimit (and their blob hashes in its SOURCE), set the pseudo-version v0.X.Y-0.<commit time, UTC, YYYYMMDDhhmmss>-$SHORT in go.mod, then go mod tidy"
grep -q "^commit $RATELIMIT_VERSION\$" "$SRC/caddy-ratelimit/SOURCE" ||
  fail "tests/tools/caddy/caddy-ratelimit is not commit $RATELIMIT_VERSION (its SOURCE says '$(sed -n 's/^commit //p' "$SRC/caddy-ratelimit/SOURCE")'), which compose/caddy/Dockerfile builds"
# Each copied file is byte for byte the upstream blob (git's blob hash: sha1 of "blob SIZE\0DATA").
while read -r kind hash file; do
  [[ "$kind" == blob ]] || continue
  [[ -f "$SRC/caddy-ratelimit/$file" ]] || fail "tests/tools/caddy/caddy-ratelimit/$file is missing"
  size="$(wc -c <"$SRC/caddy-ratelimit/$file" | tr -d ' ')"
  actual="$({ printf 'blob %s\0' "$size"; cat "$SRC/caddy-ratelimit/$file"; } | sha1sum | cut -c1-40)"
  [[ "$actual" == "$hash" ]] ||
    fail "tests/tools/caddy/caddy-ratelimit/$file differs from commit $SHORT's (blob $hash): restore it"
done <"$SRC/caddy-ratelimit/SOURCE"

BINARY="$BIN_DIR/caddy-$CADDY_VERSION-ratelimit-$SHORT"
if [[ ! -x "$BINARY" ]]; then
  # Go on PATH, else where the official archive or .ci/deps (`make deps`) puts it.
  command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin:$CACHE/go/sdk/bin"
  command -v go >/dev/null 2>&1 || fail "the Go toolchain (>= 1.21; Go fetches the newer one go.mod names) is needed to build Caddy: make deps installs it"
  mkdir -p "$CACHE/go/mod" "$CACHE/go/build" "$BIN_DIR"
  echo "==> Building Caddy $CADDY_VERSION with caddy-ratelimit $SHORT from source" >&2
  trap 'rm -f "$BINARY.tmp.$$"' EXIT
  start=$SECONDS
  export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOWORK=off \
    GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0
  # nice: a cold build takes both cores for minutes; let interactive work and other tests go first.
  (cd "$SRC" && nice -n 19 go build -mod=readonly -trimpath -ldflags "-s -w" \
    -o "$BINARY.tmp.$$" .) >&2
  "$BINARY.tmp.$$" list-modules | grep -qx 'http.handlers.rate_limit' ||
    fail "the build lacks the http.handlers.rate_limit module"
  mv "$BINARY.tmp.$$" "$BINARY"
  echo "==> Built in $((SECONDS - start)) s: $BINARY" >&2
fi
ln -sfn "$(basename "$BINARY")" "$BIN_DIR/caddy"
echo "$BINARY"
