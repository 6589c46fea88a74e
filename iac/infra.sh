#!/usr/bin/env bash
# The Scaleway infrastructure, one environment at a time (what `make infra-*` runs).
#
#   iac/infra.sh bootstrap SUFFIX    create the state bucket once (iac/bootstrap, local state)
#   iac/infra.sh init ENV            terraform init against the environment's remote state
#   iac/infra.sh plan ENV            plan, saved to .terraform/ENV/ENV.tfplan
#   iac/infra.sh apply ENV           apply the saved plan if there is one, else plan and ask
#   iac/infra.sh destroy ENV         destroy everything of ENV (asks for confirmation)
#   iac/infra.sh output ENV          every output as JSON
#   iac/infra.sh inventory ENV       the Ansible inventory (JSON, which Ansible's YAML plugin reads)
#
# ENV is dev or prod. Credentials come from the standard Scaleway variables only:
# SCW_ACCESS_KEY, SCW_SECRET_KEY, SCW_DEFAULT_PROJECT_ID (and SCW_DEFAULT_ORGANIZATION_ID).
# The S3 backend reads the same key pair, exported here as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
# Operator inputs: TF_VAR_admin_cidrs, TF_VAR_ssh_public_keys, or envs/ENV.local.tfvars (gitignored).
# TERRAFORM=/path/to/terraform picks another binary (default: terraform on PATH).
set -euo pipefail

IAC="$(cd "$(dirname "$0")" && pwd)"
TERRAFORM="${TERRAFORM:-terraform}"
read -r -a TF <<<"$TERRAFORM"

die() {
  echo "infra.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need_credentials() {
  local missing=()
  for v in SCW_ACCESS_KEY SCW_SECRET_KEY SCW_DEFAULT_PROJECT_ID; do
    [[ -n "${!v:-}" ]] || missing+=("$v")
  done
  ((${#missing[@]} == 0)) || die "set ${missing[*]} (Scaleway console > IAM > API keys; see docs/install.md#3-scaleway-the-infrastructure-with-terraform)"
  export AWS_ACCESS_KEY_ID="$SCW_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SCW_SECRET_KEY"
  export CHECKPOINT_DISABLE=1
}

command -v "${TF[0]}" >/dev/null 2>&1 || die "terraform not found (https://developer.hashicorp.com/terraform/install, >= 1.5)"

action="${1:-}"
[[ -n "$action" ]] || usage

if [[ "$action" == bootstrap ]]; then
  suffix="${2:-}"
  [[ -n "$suffix" ]] || die "usage: infra.sh bootstrap SUFFIX (1-12 lowercase letters/digits making the bucket name unique)"
  need_credentials
  cd "$IAC/bootstrap"
  "${TF[@]}" init -input=false
  "${TF[@]}" apply -var "name_suffix=$suffix"
  echo
  echo "Now put this bucket name in iac/envs/dev.backend.hcl and iac/envs/prod.backend.hcl:"
  "${TF[@]}" output -raw state_bucket
  echo
  exit 0
fi

env="${2:-}"
[[ "$env" == dev || "$env" == prod ]] || die "ENV must be dev or prod (got '${env}')"
backend="$IAC/envs/$env.backend.hcl"
grep -q 'CHANGE-ME' "$backend" && die "$backend still has bucket = \"CHANGE-ME\": run the bootstrap step first (docs/install.md#3-scaleway-the-infrastructure-with-terraform)"

need_credentials
cd "$IAC"
# One working directory per environment: switching ENV never points one at the other's state.
export TF_DATA_DIR="$IAC/.terraform/$env"
var_files=(-var-file="envs/$env.tfvars")
[[ -f "envs/$env.local.tfvars" ]] && var_files+=(-var-file="envs/$env.local.tfvars")
plan_file="$TF_DATA_DIR/$env.tfplan"

init() {
  "${TF[@]}" init -input=false -reconfigure -backend-config="$backend" >/dev/null
}

case "$action" in
  init)
    "${TF[@]}" init -input=false -reconfigure -backend-config="$backend"
    ;;
  plan)
    init
    "${TF[@]}" plan -input=false "${var_files[@]}" -out="$plan_file"
    echo "Saved to $plan_file: \`make infra-apply ENV=$env\` applies exactly this plan."
    ;;
  apply)
    init
    if [[ -f "$plan_file" ]]; then
      # A saved plan is applied as reviewed; it is single-use.
      "${TF[@]}" apply -input=false "$plan_file"
      rm -f "$plan_file"
    else
      "${TF[@]}" apply "${var_files[@]}"
    fi
    ;;
  destroy)
    init
    rm -f "$plan_file"
    "${TF[@]}" destroy "${var_files[@]}"
    ;;
  output)
    init
    "${TF[@]}" output -json
    ;;
  inventory)
    init
    "${TF[@]}" output -json ansible_inventory
    ;;
  *)
    usage
    ;;
esac
