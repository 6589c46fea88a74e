#!/usr/bin/env bash
# The stack's images in a container registry, for the release and deploy workflows (.github/).
#
#   images.sh names                          the images the stack is made of, one a line: the
#                                            services compose/docker-compose.yml builds
#   images.sh exists PREFIX TAG              exit 0 when every image PREFIX/NAME:TAG is in the registry
#   images.sh digests PREFIX TAG             the manifest digest of every PREFIX/NAME:TAG, as JSON
#                                            {"NAME": "sha256:...", ...}: what a deploy pins
#                                            (IMAGE_DIGESTS, docs/ci-cd.md); fails if one is missing
#   images.sh push PREFIX TAG                push the locally built PREFIX/NAME:TAG of every image;
#                                            refuses to overwrite a different image (immutable tags)
#   images.sh alias PREFIX TAG NEW_TAG       give the pushed PREFIX/NAME:TAG the extra tag NEW_TAG
#                                            (e.g. a version on a git tag), same immutability rule
#   images.sh copy FROM_PREFIX TO_PREFIX TAG copy every NAME:TAG from one registry namespace to
#                                            another (dev's registry to prod's), registry to
#                                            registry, digests unchanged (signatures stay valid)
#
# PREFIX is a registry namespace, e.g. rg.fr-par.scw.cloud/cepage-dev (Terraform's
# `registry_endpoint` output). Log in first (`docker login rg.fr-par.scw.cloud -u nologin`, the
# password being the Scaleway secret key). The names are the compose services that have a
# `build:` (the ones `make docker-images` builds): compose/docker-compose.yml is their one home.
# Pushes go through docker; everything else talks to the registry with skopeo (apt-get install
# skopeo; on GitHub's runners already), which reads docker's login and copies manifests byte for
# byte, so a digest checked once (a signature, a deploy's pin) names the same image everywhere.
# CEPAGE_REGISTRY_TLS_VERIFY=false lets skopeo reach a plain-HTTP registry (a local one only).
set -euo pipefail

COMPOSE_FILE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/compose/docker-compose.yml"

die() {
  echo "images.sh: $*" >&2
  exit 1
}

# The services of the compose file that have a `build:` key, in the file's order.
built_services() {
  awk '
    /^[^ #]/ { in_services = ($0 ~ /^services:/); name = ""; next }
    in_services && /^  [A-Za-z0-9_.-]+:/ { name = $1; sub(/:.*/, "", name); next }
    in_services && name != "" && /^    build:/ { print name; name = "" }
  ' "$COMPOSE_FILE"
}

IMAGES=()
while IFS= read -r name; do IMAGES+=("$name"); done < <(built_services)
((${#IMAGES[@]})) || die "no service with a build: in $COMPOSE_FILE"

# The manifest digest of a remote image, or nothing when it does not exist (or cannot be read):
# the sha256 of the manifest's bytes exactly as the registry serves them (piped, never through a
# shell variable, which would drop a trailing newline).
TLS_VERIFY="${CEPAGE_REGISTRY_TLS_VERIFY:-true}"
[[ "$TLS_VERIFY" == true || "$TLS_VERIFY" == false ]] || die "CEPAGE_REGISTRY_TLS_VERIFY is true or false"

remote_digest() {
  local sum
  sum="$(skopeo inspect --tls-verify="$TLS_VERIFY" --raw "docker://$1" 2>/dev/null | sha256sum)" || return 0
  printf 'sha256:%s\n' "${sum%% *}"
}

local_digests() {
  docker image inspect --format '{{join .RepoDigests " "}}' "$1" 2>/dev/null || true
}

# Push $1 unless the tag exists: identical content is fine, a different image is refused.
push_once() {
  local ref="$1" existing
  existing="$(remote_digest "$ref")"
  if [[ -n "$existing" ]]; then
    if [[ " $(local_digests "$ref") " == *"@$existing "* ]]; then
      echo "==> $ref already pushed ($existing)"
      return 0
    fi
    die "$ref already exists in the registry with other content ($existing): tags are immutable, build a new tag"
  fi
  echo "==> docker push $ref"
  docker push "$ref"
}

# Copy the remote image $1 to the reference $2, registry to registry, unless $2 exists: the same
# digest is fine, another image is refused (immutable tags).
copy_once() {
  local from="$1" to="$2" source existing
  source="$(remote_digest "$from")"
  [[ -n "$source" ]] || die "no image $from in the registry"
  existing="$(remote_digest "$to")"
  if [[ -n "$existing" ]]; then
    [[ "$existing" == "$source" ]] || die "$to already exists in the registry with other content ($existing, not $source): tags are immutable"
    echo "==> $to already there ($existing)"
    return 0
  fi
  echo "==> $from -> $to ($source)"
  # By digest (skopeo takes a tag or a digest, not both): the very image just read.
  skopeo copy --quiet --all --preserve-digests --src-tls-verify="$TLS_VERIFY" \
    --dest-tls-verify="$TLS_VERIFY" "docker://${from%:*}@$source" "docker://$to"
  [[ "$(remote_digest "$to")" == "$source" ]] || die "$to does not have the digest $source after the copy"
}

action="${1:-}"
if [[ "$action" =~ ^(exists|digests|push|alias|copy)$ ]]; then
  command -v skopeo >/dev/null 2>&1 || die "needs skopeo (apt-get install skopeo)"
fi
case "$action" in
  names)
    printf '%s\n' "${IMAGES[@]}"
    ;;
  exists)
    (($# == 3)) || die "usage: images.sh exists PREFIX TAG"
    for name in "${IMAGES[@]}"; do
      [[ -n "$(remote_digest "$2/$name:$3")" ]] || { echo "missing: $2/$name:$3"; exit 1; }
    done
    echo "all ${#IMAGES[@]} images exist with tag $3 in $2"
    ;;
  digests)
    (($# == 3)) || die "usage: images.sh digests PREFIX TAG"
    sep=""
    json="{"
    for name in "${IMAGES[@]}"; do
      digest="$(remote_digest "$2/$name:$3")"
      [[ -n "$digest" ]] || die "missing: $2/$name:$3"
      json+="$sep\"$name\": \"$digest\""
      sep=", "
    done
    echo "$json}"
    ;;
  push)
    (($# == 3)) || die "usage: images.sh push PREFIX TAG"
    for name in "${IMAGES[@]}"; do
      docker image inspect "$2/$name:$3" >/dev/null 2>&1 || die "no local image $2/$name:$3: run make docker-images with CEPAGE_IMAGE_PREFIX=$2 CEPAGE_IMAGE_TAG=$3"
      push_once "$2/$name:$3"
    done
    ;;
  alias)
    (($# == 4)) || die "usage: images.sh alias PREFIX TAG NEW_TAG"
    for name in "${IMAGES[@]}"; do copy_once "$2/$name:$3" "$2/$name:$4"; done
    ;;
  copy)
    (($# == 4)) || die "usage: images.sh copy FROM_PREFIX TO_PREFIX TAG"
    [[ "$2" != "$3" ]] || { echo "==> $2 is already the destination: nothing to copy"; exit 0; }
    for name in "${IMAGES[@]}"; do copy_once "$2/$name:$4" "$3/$name:$4"; done
    ;;
  *)
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
