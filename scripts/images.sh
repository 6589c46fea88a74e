#!/usr/bin/env bash
# The stack's images in a container registry, for the release and deploy workflows (.github/).
#
#   images.sh names                          the images the stack is made of, one a line: the
#                                            services compose/docker-compose.yml builds
#   images.sh exists PREFIX TAG              exit 0 when every image PREFIX/NAME:TAG is in the registry
#   images.sh push PREFIX TAG                push the locally built PREFIX/NAME:TAG of every image;
#                                            refuses to overwrite a different image (immutable tags)
#   images.sh alias PREFIX TAG NEW_TAG       give the pushed PREFIX/NAME:TAG the extra tag NEW_TAG
#                                            (e.g. a version on a git tag), same immutability rule
#   images.sh copy FROM_PREFIX TO_PREFIX TAG copy every NAME:TAG from one registry namespace to
#                                            another (dev's registry to prod's), digests unchanged
#
# PREFIX is a registry namespace, e.g. rg.fr-par.scw.cloud/cepage-dev (Terraform's
# `registry_endpoint` output). Log in first (`docker login rg.fr-par.scw.cloud -u nologin`, the
# password being the Scaleway secret key). The names are the compose services that have a
# `build:` (the ones `make docker-images` builds): compose/docker-compose.yml is their one home.
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

# The manifest digest of a remote image, or nothing when it does not exist.
remote_digest() {
  docker buildx imagetools inspect --format '{{json .Manifest.Digest}}' "$1" 2>/dev/null | tr -d '"' || true
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

action="${1:-}"
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
  push)
    (($# == 3)) || die "usage: images.sh push PREFIX TAG"
    for name in "${IMAGES[@]}"; do
      docker image inspect "$2/$name:$3" >/dev/null 2>&1 || die "no local image $2/$name:$3: run make docker-images with CEPAGE_IMAGE_PREFIX=$2 CEPAGE_IMAGE_TAG=$3"
      push_once "$2/$name:$3"
    done
    ;;
  alias)
    (($# == 4)) || die "usage: images.sh alias PREFIX TAG NEW_TAG"
    for name in "${IMAGES[@]}"; do
      docker pull -q "$2/$name:$3" >/dev/null
      docker tag "$2/$name:$3" "$2/$name:$4"
      push_once "$2/$name:$4"
    done
    ;;
  copy)
    (($# == 4)) || die "usage: images.sh copy FROM_PREFIX TO_PREFIX TAG"
    [[ "$2" != "$3" ]] || { echo "==> $2 is already the destination: nothing to copy"; exit 0; }
    for name in "${IMAGES[@]}"; do
      docker pull -q "$2/$name:$4" >/dev/null
      docker tag "$2/$name:$4" "$3/$name:$4"
      push_once "$3/$name:$4"
    done
    ;;
  *)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
