#!/usr/bin/env bash
# Run a command with an environment's MLflow and Prometheus forwarded to this machine over SSH.
#
#   playbooks/tunnel.sh ENV -- COMMAND [ARGS...]
#
# MLflow and Prometheus are published on the bastion's loopback only (compose/docker-compose.prod.yml;
# the bastion is the first host of the inventory's `control` group: dev's single host, prod's
# control host), never through the public admin sites. This opens
#   ssh -N -L 127.0.0.1:PORT1:127.0.0.1:MLFLOW -L 127.0.0.1:PORT2:127.0.0.1:PROMETHEUS USER@BASTION
# on two free local ports, waits until both answer (MLflow's /health, Prometheus' /-/ready), then
# runs COMMAND with
#   MLFLOW_TRACKING_URI=http://127.0.0.1:PORT1   CEPAGE_SMOKE_PROMETHEUS_URL=http://127.0.0.1:PORT2
# and closes the tunnel whatever happens; the exit status is COMMAND's.
#
# ENV is dev or prod. The inventory is Terraform's `ansible_inventory` output, as for
# playbooks/deploy.sh (iac/infra.sh inventory ENV, which needs the SCW_* credentials), or the saved
# copy CEPAGE_INVENTORY_JSON=FILE. SSH uses your own configuration, keys and known_hosts (batch
# mode: no prompt). CEPAGE_TUNNEL_WAIT=SECONDS (default 90) bounds the wait; CEPAGE_SSH=COMMAND
# replaces `ssh` (tests).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
PYTHON="${PYTHON:-python3}"

die() {
  echo "tunnel.sh: $*" >&2
  exit 2
}
usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

env="${1:-}"
[[ "${2:-}" == "--" && $# -ge 3 ]] || usage
[[ "$env" == dev || "$env" == prod ]] || die "ENV must be dev or prod (got '${env}')"
shift 2
wait_seconds="${CEPAGE_TUNNEL_WAIT:-90}"
[[ "$wait_seconds" =~ ^[0-9]+$ ]] || die "CEPAGE_TUNNEL_WAIT must be a number of seconds (got '$wait_seconds')"

if [[ -n "${CEPAGE_INVENTORY_JSON:-}" ]]; then
  [[ -f "$CEPAGE_INVENTORY_JSON" ]] || die "CEPAGE_INVENTORY_JSON=$CEPAGE_INVENTORY_JSON is not a file"
  inventory="$(cat "$CEPAGE_INVENTORY_JSON")"
else
  inventory="$("$ROOT/iac/infra.sh" inventory "$env")" || die "cannot read Terraform's outputs of $env (make infra-apply ENV=$env first)"
fi

# USER HOST SSH_PORT MLFLOW_PORT PROMETHEUS_PORT LOCAL_PORT1 LOCAL_PORT2: the bastion from the
# inventory (its ansible_port if any), the ports the prod compose file publishes on the host's
# loopback (their one home; CEPAGE_MLFLOW_PORT/CEPAGE_PROMETHEUS_PORT as compose reads them), two
# free ports here.
read -r user host ssh_port mlflow_port prometheus_port local_mlflow local_prometheus < <(
  CEPAGE_TUNNEL_INVENTORY="$inventory" "$PYTHON" - "$ROOT/compose/docker-compose.prod.yml" <<'EOF'
import json, os, re, socket, sys

try:
    inventory = json.loads(os.environ["CEPAGE_TUNNEL_INVENTORY"])
    inventory = inventory.get("value", inventory)  # `terraform output -json` of the whole output
    top = inventory["all"]
    control = top["children"]["control"]["hosts"]
    name, host = next(iter(control.items()))
    user = host.get("ansible_user") or top.get("vars", {})["ansible_user"]
    address = host["ansible_host"]
    port = str(host.get("ansible_port") or top.get("vars", {}).get("ansible_port") or 22)
except (ValueError, KeyError, StopIteration, TypeError, AttributeError) as error:
    sys.exit(f"tunnel.sh: no control host with ansible_host and ansible_user in the inventory ({error!r})")
compose = open(sys.argv[1]).read()
ports = []
for name in ("MLFLOW", "PROMETHEUS"):
    match = re.search(r"127\.0\.0\.1:\$\{CEPAGE_%s_PORT:-(\d+)\}:\d+" % name, compose)
    if not match:
        sys.exit(f"tunnel.sh: {sys.argv[1]} publishes no CEPAGE_{name}_PORT on 127.0.0.1")
    # The same variable compose reads on the host (set only where a deployment changes it).
    ports.append(os.environ.get(f"CEPAGE_{name}_PORT") or match.group(1))
free = []
for _ in range(2):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free.append(probe)
print(user, address, port, *ports, *(str(s.getsockname()[1]) for s in free))
EOF
) || true
[[ -n "${local_prometheus:-}" ]] || die "cannot find the bastion or the ports (see above)"

read -r -a ssh_command <<<"${CEPAGE_SSH:-ssh}"
ssh_args=(-N -o BatchMode=yes -o ExitOnForwardFailure=yes -o ServerAliveInterval=15
  -o ServerAliveCountMax=3 -o ConnectTimeout=15 -p "$ssh_port"
  -L "127.0.0.1:$local_mlflow:127.0.0.1:$mlflow_port"
  -L "127.0.0.1:$local_prometheus:127.0.0.1:$prometheus_port"
  "$user@$host")

ssh_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
close() {
  if [[ -n "$ssh_pid" ]] && kill -0 "$ssh_pid" 2>/dev/null; then
    kill "$ssh_pid" 2>/dev/null || true
    wait "$ssh_pid" 2>/dev/null || true
    echo "tunnel.sh: tunnel to $host closed" >&2
  fi
}
trap close EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

answers() { # answers URL: 2xx within 5 s
  "$PYTHON" -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=5).status < 300 else 1)
except Exception:
    sys.exit(1)' "$1"
}

# The rule that lets this machine in may take a few seconds to apply: ssh is restarted until the
# deadline if it exits (refused, timed out) before the forwards answer.
mlflow_url="http://127.0.0.1:$local_mlflow"
prometheus_url="http://127.0.0.1:$local_prometheus"
deadline=$((SECONDS + wait_seconds))
ready=""
while ((SECONDS <= deadline)); do
  if [[ -z "$ssh_pid" ]] || ! kill -0 "$ssh_pid" 2>/dev/null; then
    [[ -z "$ssh_pid" ]] || wait "$ssh_pid" 2>/dev/null || true
    "${ssh_command[@]}" "${ssh_args[@]}" &
    ssh_pid=$!
  fi
  if answers "$mlflow_url/health" && answers "$prometheus_url/-/ready"; then
    ready=1
    break
  fi
  sleep 2
done
if [[ -z "$ready" ]]; then
  answers "$mlflow_url/health" || echo "tunnel.sh: MLflow does not answer on $host's 127.0.0.1:$mlflow_port" >&2
  answers "$prometheus_url/-/ready" || echo "tunnel.sh: Prometheus does not answer on $host's 127.0.0.1:$prometheus_port" >&2
  echo "tunnel.sh: no working tunnel to $user@$host after ${wait_seconds}s" >&2
  exit 1
fi
echo "tunnel.sh: $env's MLflow at $mlflow_url, Prometheus at $prometheus_url (through $host)" >&2

export MLFLOW_TRACKING_URI="$mlflow_url"
export CEPAGE_SMOKE_PROMETHEUS_URL="$prometheus_url"
set +e
"$@"
status=$?
set -e
exit "$status"
