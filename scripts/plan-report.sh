#!/usr/bin/env bash
# Plan one environment and check the plan against the compliance features; write a Markdown
# report for the pull request (what `make infra-compliance ENV=...` and the `ci` workflow run).
#
#   scripts/plan-report.sh ENV [REPORT_DIR]
#
# Runs `iac/infra.sh plan ENV` (real credentials: SCW_* as for `make infra-plan`), then
# terraform-compliance (scripts/iac-tools.sh) with tests/infra/compliance/all (and .../prod
# for prod) on `terraform show -json` of the saved plan. Writes REPORT_DIR/ENV.md (default
# iac/.terraform/reports): the resource changes, the compliance summary and the plan itself,
# folded. Exit 1 when the plan or a compliance scenario fails (after writing the report).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ENV_NAME="${1:-}"
[[ "$ENV_NAME" == dev || "$ENV_NAME" == prod ]] || { echo "usage: plan-report.sh dev|prod [REPORT_DIR]" >&2; exit 2; }
REPORTS="${2:-$ROOT/iac/.terraform/reports}"
mkdir -p "$REPORTS"
REPORT="$REPORTS/$ENV_NAME.md"
TERRAFORM="${TERRAFORM:-terraform}"
read -r -a TF <<<"$TERRAFORM"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

status=0
plan_rc=0
TERRAFORM="$TERRAFORM" bash "$ROOT/iac/infra.sh" plan "$ENV_NAME" >"$WORK/plan.log" 2>&1 || plan_rc=$?

compliance_line="not run (no plan)"
if ((plan_rc == 0)); then
  export TF_DATA_DIR="$ROOT/iac/.terraform/$ENV_NAME"
  "${TF[@]}" -chdir="$ROOT/iac" show -no-color "$TF_DATA_DIR/$ENV_NAME.tfplan" >"$WORK/plan.txt"
  # terraform-compliance wants the JSON plan on one line.
  "${TF[@]}" -chdir="$ROOT/iac" show -json "$TF_DATA_DIR/$ENV_NAME.tfplan" | tr -d '\n' >"$WORK/plan.json"
  compliance="$(bash "$ROOT/scripts/iac-tools.sh" | head -n1)"
  folders=(all)
  [[ "$ENV_NAME" == prod ]] && folders+=(prod)
  : >"$WORK/compliance.log"
  for folder in "${folders[@]}"; do
    "$compliance" --no-ansi -p "$WORK/plan.json" -f "$ROOT/tests/infra/compliance/$folder" \
      >>"$WORK/compliance.log" 2>&1 || status=1
  done
  compliance_line="$(grep -E '^[0-9]+ scenarios' "$WORK/compliance.log" | paste -sd ';' - || true)"
  [[ -n "$compliance_line" ]] || { compliance_line="no summary (see the log)"; status=1; }
else
  status=1
  cp "$WORK/plan.log" "$WORK/plan.txt"
fi

changes="$(grep -E '^(Plan:|No changes\.)' "$WORK/plan.txt" | tail -n1 || true)"
{
  echo "<!-- cepage-plan:$ENV_NAME -->"
  echo "#### Terraform \`$ENV_NAME\`: $([[ $status == 0 ]] && echo "plan OK, compliant" || echo "**FAILED**")"
  echo
  echo "- changes: ${changes:-"(plan failed: exit $plan_rc)"}"
  echo "- compliance: $compliance_line"
  echo
  echo "<details><summary>plan output</summary>"
  echo
  echo '```'
  # A PR comment holds 65536 characters: keep the plan's tail end within budget.
  tail -c 50000 "$WORK/plan.txt"
  echo '```'
  echo "</details>"
  if [[ -s "$WORK/compliance.log" ]] && ((status != 0)); then
    echo
    echo "<details><summary>compliance output</summary>"
    echo
    echo '```'
    tail -c 8000 "$WORK/compliance.log"
    echo '```'
    echo "</details>"
  fi
} >"$REPORT"
echo "Report: $REPORT"
exit "$status"
