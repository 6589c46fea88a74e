#!/usr/bin/env bash
# Deploy with Ansible (what `make deploy|rollback|restore` runs).
#
#   playbooks/deploy.sh deploy ENV [ansible-playbook args]     site.yml; IMAGE_TAG=<tag> to roll one out,
#                                                              IMAGE_DIGESTS=<file> its images' digests
#                                                              (scripts/images.sh digests; prod needs them)
#   playbooks/deploy.sh rollback ENV [args]                    site.yml with the tag deployed before
#   playbooks/deploy.sh restore ENV [args]                     restore.yml; DUMP=<name> (default: latest)
#
# ENV is dev or prod. The inventory is Terraform's `ansible_inventory` output (iac/infra.sh
# inventory ENV, which needs the SCW_* credentials), written to playbooks/inventories/ENV/terraform.json
# (gitignored) beside the environment's group_vars; CEPAGE_INVENTORY_JSON=FILE uses a saved copy
# instead. Secrets: playbooks/inventories/ENV/group_vars/all/vault.yml (gitignored), encrypted
# with the password in the file ANSIBLE_VAULT_PASSWORD_FILE names, or given in ANSIBLE_VAULT_PASSWORD.
# CEPAGE_INVENTORY_DIR=DIR replaces playbooks/inventories/ENV (tests).
# CEPAGE_SSH_VIA_BASTION=1 (CI's runners, whose address only the bastion's security group lets in:
# scripts/ci_access.py): every host but the bastion is reached at its private address through it
# (SSH ProxyJump; playbooks/group_vars/all/main.yml). Unset: each host directly (admin ranges).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
ANSIBLE_PLAYBOOK="${ANSIBLE_PLAYBOOK:-ansible-playbook}"

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}

action="${1:-}"
env="${2:-}"
[[ "$action" =~ ^(deploy|rollback|restore)$ ]] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
shift 2
inventory_dir="${CEPAGE_INVENTORY_DIR:-}"
if [[ -z "$inventory_dir" ]]; then
  [[ "$env" == dev || "$env" == prod ]] || die "ENV must be dev or prod (got '${env}')"
  inventory_dir="$HERE/inventories/$env"
fi
inventory="$inventory_dir/terraform.json"

# The inventory, from Terraform's outputs (never edited by hand).
if [[ -n "${CEPAGE_INVENTORY_JSON:-}" ]]; then
  cp "$CEPAGE_INVENTORY_JSON" "$inventory.tmp"
else
  "$ROOT/iac/infra.sh" inventory "$env" >"$inventory.tmp" || { rm -f "$inventory.tmp"; die "cannot read Terraform's outputs of $env (make infra-apply ENV=$env first)"; }
fi
mv "$inventory.tmp" "$inventory"

vault="$inventory_dir/group_vars/all/vault.yml"
[[ -f "$vault" ]] || die "no $vault: copy $inventory_dir/vault.example.yml there, fill it in and encrypt it (ansible-vault encrypt)"
args=(-i "$inventory")
if head -n 1 "$vault" | grep -q '^\$ANSIBLE_VAULT'; then
  if [[ -n "${ANSIBLE_VAULT_PASSWORD_FILE:-}" ]]; then
    : # ansible-playbook reads it itself
  elif [[ -n "${ANSIBLE_VAULT_PASSWORD:-}" ]]; then
    args+=(--vault-password-file "$HERE/vault-password-from-env.sh")
  else
    die "$vault is encrypted: set ANSIBLE_VAULT_PASSWORD_FILE (a file holding the password) or ANSIBLE_VAULT_PASSWORD"
  fi
else
  # A vault in clear is a file of secrets one `git add -f` or backup away from leaking.
  die "$vault is not encrypted: ansible-vault encrypt $vault (then set ANSIBLE_VAULT_PASSWORD_FILE)"
fi

case "${CEPAGE_SSH_VIA_BASTION:-0}" in
  1 | true) args+=(-e cepage_ssh_via_bastion=true) ;;
  0 | false | "") ;;
  *) die "CEPAGE_SSH_VIA_BASTION must be 1 or 0 (got '$CEPAGE_SSH_VIA_BASTION')" ;;
esac

export ANSIBLE_CONFIG="$HERE/ansible.cfg"
case "$action" in
  deploy)
    [[ -z "${IMAGE_TAG:-}" ]] || args+=(-e "cepage_image_tag=$IMAGE_TAG")
    if [[ -n "${IMAGE_DIGESTS:-}" ]]; then
      [[ -n "${IMAGE_TAG:-}" ]] || die "IMAGE_DIGESTS goes with the IMAGE_TAG they are the digests of"
      [[ -f "$IMAGE_DIGESTS" ]] || die "IMAGE_DIGESTS=$IMAGE_DIGESTS is not a file (scripts/images.sh digests PREFIX TAG > FILE)"
      # A JSON object name -> digest; the role checks the names and the digests' form.
      args+=(-e "{\"cepage_image_digests\": $(cat "$IMAGE_DIGESTS")}")
    fi
    playbook="$HERE/site.yml"
    ;;
  rollback)
    args+=(-e cepage_stack_rollback=true)
    playbook="$HERE/site.yml"
    ;;
  restore)
    args+=(-e "cepage_restore_dump=${DUMP:-latest}")
    playbook="$HERE/restore.yml"
    ;;
esac
exec "$ANSIBLE_PLAYBOOK" "${args[@]}" "$@" "$playbook"
