#!/usr/bin/env bash
# The release's signatures on the stack's images (Sigstore keyless signing with cosign), for the
# release and deploy workflows (.github/; docs/ci-cd.md#signed-images).
#
#   signatures.sh sign PREFIX DIGESTS      sign PREFIX/NAME@DIGEST for every NAME of DIGESTS (the
#                                          JSON `images.sh digests` prints), with the job's OIDC
#                                          token (id-token: write)
#   signatures.sh verify PREFIX DIGESTS    exit 0 when every PREFIX/NAME@DIGEST carries a signature
#                                          of this repository's release.yml run on main or a v* tag
#   signatures.sh identity OWNER/REPO      the certificate identity pattern verify requires
#
# The identity, in one place. A keyless certificate names the workflow file that ran
# (https://github.com/OWNER/REPO/.github/workflows/release.yml@REF), and another repository that
# calls this release.yml as a reusable workflow gets that same name: so verify also checks the
# repository the run belonged to (--certificate-github-workflow-repository, GITHUB_REPOSITORY as
# Actions sets it), and only this repository's own runs count.
set -euo pipefail

ISSUER="https://token.actions.githubusercontent.com"

die() {
  echo "signatures.sh: $*" >&2
  exit 1
}

# [.]: a literal dot in the regular expression. Tags as the release workflow takes them (v*.*.*).
identity_pattern() {
  local repository="${1//./[.]}"
  printf '^https://github[.]com/%s/[.]github/workflows/release[.]yml@refs/(heads/main|tags/v[0-9]+[.][0-9]+[.][0-9]+([-+][0-9A-Za-z.-]+)?)$\n' "$repository"
}

# "NAME DIGEST" lines of a digests file (read whole before any signing or checking: a bad file
# must stop the script, not read as an empty list that verifies nothing).
entries() {
  [[ -f "$1" ]] || die "no digests file $1 (scripts/images.sh digests PREFIX TAG > FILE)"
  local lines
  lines="$(jq -er 'to_entries[] | "\(.key) \(.value)"' "$1")" || die "$1 is not the JSON images.sh digests prints"
  [[ -n "$lines" ]] || die "$1 names no image"
  printf '%s\n' "$lines"
}

action="${1:-}"
case "$action" in
  identity)
    (($# == 2)) || die "usage: signatures.sh identity OWNER/REPO"
    identity_pattern "$2"
    ;;
  sign)
    (($# == 3)) || die "usage: signatures.sh sign PREFIX DIGESTS"
    command -v cosign >/dev/null 2>&1 || die "needs cosign (sigstore/cosign-installer)"
    list="$(entries "$3")"
    while read -r name digest; do
      echo "==> signing $2/$name@$digest"
      cosign sign --yes "$2/$name@$digest"
    done <<<"$list"
    ;;
  verify)
    (($# == 3)) || die "usage: signatures.sh verify PREFIX DIGESTS"
    command -v cosign >/dev/null 2>&1 || die "needs cosign (sigstore/cosign-installer)"
    [[ -n "${GITHUB_REPOSITORY:-}" ]] || die "GITHUB_REPOSITORY (owner/name) is not set"
    pattern="$(identity_pattern "$GITHUB_REPOSITORY")"
    list="$(entries "$3")"
    while read -r name digest; do
      if ! cosign verify --certificate-oidc-issuer "$ISSUER" \
        --certificate-identity-regexp "$pattern" \
        --certificate-github-workflow-repository "$GITHUB_REPOSITORY" \
        "$2/$name@$digest" >/dev/null; then
        echo "::error::$2/$name@$digest has no signature of $GITHUB_REPOSITORY's release workflow on main or a v* tag (docs/ci-cd.md#signed-images)"
        exit 1
      fi
      echo "==> $2/$name@$digest: signed by $GITHUB_REPOSITORY's release workflow"
    done <<<"$list"
    ;;
  *)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
