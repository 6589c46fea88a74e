"""The CI runner's temporary SSH access to an environment's bastion (docs/ci-cd.md).

A GitHub-hosted runner has an address nobody knows in advance, and SSH is open only to the admin
ranges. For the length of a run, the workflow adds one inbound rule ``TCP 22 accept from
RUNNER_IP/32`` to the **bastion** security group (Terraform's ``security_groups`` output: the edge
host's group, dev's single host or prod's control host) through the Scaleway Instance API, and
removes it in an ``always()`` step; a scheduled sweeper removes what a dead run left behind::

    python -m scripts.ci_access open  [--ip IP] (--env ENV | --outputs FILE)
    python -m scripts.ci_access close [--ip IP] (--env ENV | --outputs FILE)
    python -m scripts.ci_access sweep [--keep CIDR_JSON] [--dry-run] (--env ENV | --outputs FILE)

``open`` is idempotent (an identical rule is reused), prints the rule's id, and waits until the
bastion's port 22 answers. ``close`` removes every port-22 rule of that range (it matches by range
and port, not by a saved id: it works after the run that opened it died). ``sweep`` removes every
inbound port-22 rule, on every group of the environment, whose range is not one of the admin
ranges (``--keep``, default ``$TF_VAR_admin_cidrs``, else the inventory output's
``cepage_admin_cidrs``: the ranges the applied configuration allows); ``sweep --dry-run`` only
lists them, and exits 3 if there are any (a read-only key can run it). The next ``terraform
apply`` would also remove any of them (the groups' inline rules are authoritative).

Settings from the environment: ``SCW_SECRET_KEY`` (the API key, required), ``SCW_API_URL`` (the
API's base URL, default https://api.scaleway.com), ``TF_VAR_admin_cidrs`` (the sweep's default
``--keep``), ``GITHUB_OUTPUT`` (when set, ``ip`` and ``rule_id`` are written there).
Exit codes: 0 done, 1 an API or network error (its message printed), 2 a usage error, 3 a dry
run found rules to remove.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

DEFAULT_API_URL = "https://api.scaleway.com"
DEFAULT_IP_URL = "https://api.ipify.org"
SSH_PORT = 22
PER_PAGE = 100
TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parent.parent


class AccessError(Exception):
    """A failure to report in one line (exit 1)."""


class UsageError(Exception):
    """A missing or malformed setting (exit 2)."""


@dataclass(frozen=True)
class Groups:
    """Terraform's ``security_groups`` output; the bastion's public address and the admin ranges
    from its ``ansible_inventory`` output, when there."""

    zone: str
    bastion: str
    all: tuple[str, ...]
    bastion_address: str | None = None
    admin_cidrs: tuple[str, ...] = ()


# --- settings ------------------------------------------------------------------------------------


def _value(outputs: dict[str, Any], name: str) -> Any:
    """An output's value from ``terraform output -json`` (``{"name": {"value": ...}}``)."""
    entry = outputs.get(name)
    return entry.get("value") if isinstance(entry, dict) and "value" in entry else entry


def _bastion_address(inventory: dict[str, Any]) -> str | None:
    """The first ``control`` host's ``ansible_host`` in the ``ansible_inventory`` output."""
    hosts = inventory.get("all", {}).get("children", {}).get("control", {}).get("hosts", {})
    for host in hosts.values():
        address = host.get("ansible_host")
        return str(address) if address else None
    return None


def parse_groups(outputs: dict[str, Any]) -> Groups:
    """The security groups from Terraform's outputs (the whole JSON, or the bare value)."""
    raw = _value(outputs, "security_groups") if "security_groups" in outputs else outputs
    if not isinstance(raw, dict) or not raw.get("zone") or not raw.get("bastion"):
        raise UsageError(
            "no security_groups output {zone, bastion, all} in the Terraform outputs "
            "(terraform apply with the current iac/ first)"
        )
    every = tuple(str(g) for g in raw.get("all") or [raw["bastion"]])
    inventory = _value(outputs, "ansible_inventory") or {}
    admins = inventory.get("all", {}).get("vars", {}).get("cepage_admin_cidrs") or []
    return Groups(
        str(raw["zone"]), str(raw["bastion"]), every, _bastion_address(inventory),
        tuple(str(c) for c in admins),
    )  # fmt: skip


def read_outputs(path: str | None, env: str | None) -> dict[str, Any]:
    """Terraform's outputs: a saved ``make -s infra-output`` JSON, or that command's output."""
    if path:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
        except OSError as error:
            raise UsageError(f"cannot read --outputs {path}: {error.strerror}") from error
    elif env:
        done = subprocess.run(  # nosec B603 B607  # make from PATH, fixed arguments, no shell
            ["make", "-s", "infra-output", f"ENV={env}"],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AccessError(f"make infra-output ENV={env} failed: {done.stderr.strip()[-500:]}")
        text = done.stdout
    else:
        raise UsageError("say where the Terraform outputs are: --env ENV or --outputs FILE")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"the Terraform outputs are not JSON: {error}") from error
    if not isinstance(data, dict):
        raise UsageError("the Terraform outputs are not a JSON object")
    return data


def public_ipv4(text: str) -> str:
    """``text`` as an IPv4 address that is public (global), else a UsageError."""
    try:
        address = ipaddress.IPv4Address(text.strip())
    except ValueError as error:
        raise UsageError(f"not an IPv4 address: {text.strip()[:60]!r}") from error
    if not address.is_global:
        raise UsageError(f"{address} is not a public IPv4 address")
    return str(address)


def runner_ip(session: requests.Session, url: str) -> str:
    """This machine's public IPv4, as the service at ``url`` sees it."""
    try:
        response = session.get(url, timeout=TIMEOUT)
        response.raise_for_status()
    except requests.RequestException as error:
        raise AccessError(f"cannot learn this runner's public IP from {url}: {error}") from error
    return public_ipv4(response.text)


def cidrs(text: str) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A JSON list of CIDRs (Terraform's admin_cidrs), normalised."""
    try:
        values = json.loads(text)
        if not isinstance(values, list):
            raise ValueError("not a list")
        return {ipaddress.ip_network(str(v), strict=False) for v in values}
    except ValueError as error:  # json.JSONDecodeError is one
        raise UsageError(f"not a JSON list of CIDRs: {text[:80]!r}") from error


# --- the Scaleway Instance API -------------------------------------------------------------------


class InstanceAPI:
    """The security group rule calls of the Instance API (scaleway-sdk-go api/instance/v1)."""

    def __init__(self, session: requests.Session, base: str, zone: str) -> None:
        self.session = session
        self.base = f"{base.rstrip('/')}/instance/v1/zones/{zone}/security_groups"

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.base + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as error:
            raise AccessError(f"{method} {self.base}{path}: {error}") from error
        if response.status_code >= 400:
            raise AccessError(f"{method} {self.base}{path}: {api_message(response)}")
        return response

    def rules(self, group: str) -> list[dict[str, Any]]:
        """Every rule of ``group`` (all pages)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._call(
                "GET", f"/{group}/rules", params={"per_page": PER_PAGE, "page": page}
            ).json()
            batch = body.get("rules") or []
            found += batch
            if not batch or len(found) >= int(body.get("total_count", len(found))):
                return found
            page += 1

    def create(self, group: str, ip_range: str) -> dict[str, Any]:
        """Add ``TCP 22 accept from ip_range`` (inbound) to ``group``; the rule created."""
        body = {
            "protocol": "TCP",
            "direction": "inbound",
            "action": "accept",
            "ip_range": ip_range,
            "dest_port_from": SSH_PORT,
            "editable": True,
        }
        rule: dict[str, Any] = self._call("POST", f"/{group}/rules", json=body).json()["rule"]
        return rule

    def delete(self, group: str, rule_id: str) -> None:
        self._call("DELETE", f"/{group}/rules/{rule_id}")


def api_message(response: requests.Response) -> str:
    """The API's own explanation of an error answer (its JSON ``message``), with the status."""
    try:
        body = response.json()
        message = body.get("message") or body.get("type") or response.text
    except (ValueError, AttributeError):
        message = response.text
    hint = (
        " (is SCW_SECRET_KEY the environment's apply key?)"
        if response.status_code in (401, 403)
        else ""
    )
    return f"HTTP {response.status_code}: {str(message).strip()[:300]}{hint}"


def api_session() -> requests.Session:
    key = os.environ.get("SCW_SECRET_KEY", "").strip()
    if not key:
        raise UsageError(
            "SCW_SECRET_KEY is not set (the Scaleway API key that may edit the security groups)"
        )
    session = requests.Session()
    session.headers.update({"X-Auth-Token": key, "User-Agent": "cepage-ci-access"})
    return session


# --- the rules -----------------------------------------------------------------------------------


def is_ssh_rule(rule: dict[str, Any]) -> bool:
    """An inbound TCP accept whose port range is exactly 22."""
    low, high = rule.get("dest_port_from"), rule.get("dest_port_to")
    return (
        str(rule.get("direction", "")).lower() == "inbound"
        and str(rule.get("protocol", "")).upper() == "TCP"
        and str(rule.get("action", "")).lower() == "accept"
        and low == SSH_PORT
        and high in (None, 0, SSH_PORT)
    )


def same_range(
    rule: dict[str, Any], network: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    try:
        return ipaddress.ip_network(str(rule.get("ip_range")), strict=False) == network
    except ValueError:
        return False


def open_access(api: InstanceAPI, group: str, ip: str) -> tuple[str, bool]:
    """The id of the rule letting ``ip`` reach SSH on ``group``, and whether it was created."""
    network = ipaddress.ip_network(f"{ip}/32")
    for rule in api.rules(group):
        if is_ssh_rule(rule) and same_range(rule, network):
            return str(rule["id"]), False
    return str(api.create(group, str(network))["id"]), True


def close_access(api: InstanceAPI, group: str, ip: str) -> list[str]:
    """Remove every SSH rule of ``ip``/32 on ``group``; the ids removed."""
    network = ipaddress.ip_network(f"{ip}/32")
    removed = []
    for rule in api.rules(group):
        if is_ssh_rule(rule) and same_range(rule, network):
            api.delete(group, str(rule["id"]))
            removed.append(str(rule["id"]))
    return removed


def sweep(
    api: InstanceAPI,
    groups: Iterable[str],
    keep: set[ipaddress.IPv4Network | ipaddress.IPv6Network],
    dry_run: bool = False,
) -> list[tuple[str, str, str]]:
    """Remove (with ``dry_run``, only list) every SSH rule whose range is not in ``keep``;
    (group, rule id, range) of each."""
    found = []
    for group in groups:
        for rule in api.rules(group):
            if is_ssh_rule(rule) and not any(same_range(rule, network) for network in keep):
                if not dry_run:
                    api.delete(group, str(rule["id"]))
                found.append((group, str(rule["id"]), str(rule.get("ip_range"))))
    return found


def wait_for_ssh(address: str, seconds: float) -> bool:
    """Whether ``address``:22 accepts a TCP connection within ``seconds`` (the rule is live)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((address, SSH_PORT), timeout=5):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(2)


def record(**values: str) -> None:
    """Write ``values`` as step outputs when running in GitHub Actions."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.writelines(f"{name}={value}\n" for name, value in values.items())


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.ci_access",
        description="Open, close or sweep the CI runner's temporary SSH rule on the bastion.",
    )
    parser.add_argument("action", choices=["open", "close", "sweep"])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--env", help="dev or prod: read its Terraform outputs (make infra-output)")
    where.add_argument("--outputs", help="a saved `make -s infra-output` JSON file ('-': stdin)")
    parser.add_argument(
        "--ip", help="open/close: the address (default: this machine's public IPv4)"
    )
    parser.add_argument("--ip-url", default=DEFAULT_IP_URL, help="where to learn this machine's IP")
    parser.add_argument(
        "--keep",
        help="sweep: JSON list of CIDRs to keep (default $TF_VAR_admin_cidrs, else the "
        "ansible_inventory output's cepage_admin_cidrs)",
    )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="sweep: only list what it would remove, and exit 3 if there is anything",
    )  # fmt: skip
    parser.add_argument(
        "--wait", type=float, default=90.0,
        help="open: seconds to wait for the bastion's SSH port to answer (0: do not wait)",
    )  # fmt: skip
    return parser.parse_args(argv)


def _say(message: str) -> None:
    print(f"ci_access: {message}", file=sys.stderr)


class LeftoverRulesError(Exception):
    """A dry-run sweep found rules to remove (exit 3)."""


def admin_ranges(
    keep: str | None, groups: Groups
) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The ranges a sweep keeps: ``--keep``, else TF_VAR_admin_cidrs, else the inventory's."""
    text = keep or os.environ.get("TF_VAR_admin_cidrs", "")  # noqa: SIM112  # Terraform's own name
    if not text.strip() and groups.admin_cidrs:
        text = json.dumps(list(groups.admin_cidrs))
    ranges = cidrs(text) if text.strip() else set()
    if not ranges:
        raise UsageError(
            "no admin ranges to keep (--keep, TF_VAR_admin_cidrs or the inventory's "
            "cepage_admin_cidrs): refusing to remove every SSH rule"
        )
    return ranges


def sweep_rules(api: InstanceAPI, groups: Groups, keep: str | None, dry_run: bool) -> None:
    found = sweep(api, groups.all, admin_ranges(keep, groups), dry_run)
    verb = "would remove" if dry_run else "removed"
    for group, rule_id, ip_range in found:
        _say(f"{verb} rule {rule_id} (SSH from {ip_range}) of security group {group}")
    done = "to remove (dry run)" if dry_run else "removed"
    _say(f"sweep done: {len(found)} rule(s) {done}, {len(groups.all)} group(s) checked")
    if dry_run and found:
        raise LeftoverRulesError(f"{len(found)} SSH rule(s) outside the admin ranges are open")


def run(args: argparse.Namespace) -> None:
    groups = parse_groups(read_outputs(args.outputs, args.env))
    session = api_session()
    api = InstanceAPI(session, os.environ.get("SCW_API_URL") or DEFAULT_API_URL, groups.zone)
    if args.action == "sweep":
        sweep_rules(api, groups, args.keep, args.dry_run)
        return
    ip = public_ipv4(args.ip) if args.ip else runner_ip(requests.Session(), args.ip_url)
    if args.action == "open":
        rule_id, created = open_access(api, groups.bastion, ip)
        _say(f"{'opened' if created else 'already open:'} SSH from {ip}/32 on security group "
             f"{groups.bastion} (rule {rule_id})")  # fmt: skip
        record(ip=ip, rule_id=rule_id)
        print(rule_id)
        if args.wait > 0 and groups.bastion_address:
            if not wait_for_ssh(groups.bastion_address, args.wait):
                raise AccessError(
                    f"{groups.bastion_address}:22 still not reachable after {args.wait:.0f} s "
                    "(a host firewall from before the bastion existed drops it: deploy once "
                    "from an admin address, make deploy ENV=...)"
                )
            _say(f"{groups.bastion_address}:22 answers")
        return
    removed_ids = close_access(api, groups.bastion, ip)
    _say(f"closed SSH from {ip}/32 on security group {groups.bastion}: "
         f"{len(removed_ids)} rule(s) removed {' '.join(removed_ids)}".rstrip())  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(parse_args(argv))
    except UsageError as error:
        print(f"ci_access: {error}", file=sys.stderr)
        return 2
    except AccessError as error:
        print(f"ci_access: FAIL {error}", file=sys.stderr)
        return 1
    except LeftoverRulesError as error:
        print(f"ci_access: {error}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
