"""iac/: formatting, validation, and the real plans of dev and prod with the real provider."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.infra.tf import (
    ADMIN_CIDRS,
    IAC,
    SSH_KEYS,
    Workdir,
    after,
    config_references,
    lock_version,
    plan_values,
    required_version,
    resources,
)

pytestmark = [pytest.mark.infra, pytest.mark.timeout(3600)]

ENVS = ("dev", "prod")


def test_formatting(iac: Workdir) -> None:
    result = iac.run("fmt", "-check", "-recursive", "-diff", "-no-color", str(IAC))
    assert result.rc == 0, f"run `terraform fmt -recursive iac`:\n{result.text}"


@pytest.mark.parametrize("name", ["iac", "bootstrap"])
def test_validate(name: str, request: pytest.FixtureRequest) -> None:
    workdir: Workdir = request.getfixturevalue(name)
    result = workdir.check("validate", "-no-color", "-json")
    report = json.loads(result.out)
    assert report["valid"], report
    assert report["warning_count"] == 0, report["diagnostics"]


@pytest.mark.parametrize("root", [IAC, IAC / "bootstrap"], ids=["iac", "bootstrap"])
def test_lock_pins_the_required_provider(root: Any) -> None:
    """The committed lock file and versions.tf name the same exact provider version."""
    required = required_version(root / "versions.tf")
    assert required is not None and required.count(".") == 2, "pin an exact provider version"
    assert lock_version(root / ".terraform.lock.hcl") == required


@pytest.mark.parametrize("env", ENVS)
def test_plan_creates_the_environment(env: str, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans[env]
    values = plan_values(plan)
    assert values["environment"] == env
    assert {a for rc in resources(plan) for a in rc["change"]["actions"]} == {"create"}

    count = values["service_instance_count"]
    ha = count > 1
    servers = {after(rc)["name"]: after(rc) for rc in resources(plan, "scaleway_instance_server")}
    service = {n for n, s in servers.items() if "role=service" in s["tags"]}
    control = {n for n, s in servers.items() if "role=control" in s["tags"]}
    assert len(service) == count
    assert len(control) == 1
    assert len(servers) == count + (1 if ha else 0), "HA adds exactly one control instance"
    assert (service & control == set()) is ha, "one instance carries every role only without HA"
    assert {s["type"] for n, s in servers.items() if n in service} == {values["instance_type"]}
    if ha:
        assert {s["type"] for n, s in servers.items() if n in control} == {
            values["control_instance_type"]
        }

    # Exactly one public IP per instance, one data volume, and the optional parts.
    assert len(resources(plan, "scaleway_instance_ip")) == len(servers)
    assert len(resources(plan, "scaleway_block_volume")) == 1
    assert len(resources(plan, "scaleway_lb")) == (1 if ha else 0)
    assert len(resources(plan, "scaleway_rdb_instance")) == (1 if values["managed_database"] else 0)
    secrets = {after(rc)["name"] for rc in resources(plan, "scaleway_secret")}
    assert ("database-password" in secrets) is values["managed_database"]
    assert len(resources(plan, "scaleway_secret_version")) == len(secrets)
    # One identity per secret: only passwords a service reads are generated (the admin sites'
    # password is the vault's bcrypt hash; a generated twin would open nothing).
    generated = {k.removesuffix("-password") for k in secrets if k.endswith("-password")}
    expected = {"grafana-admin", "database"} if values["managed_database"] else {"grafana-admin"}
    assert generated == expected


@pytest.mark.parametrize("env", ENVS)
def test_security_groups(env: str, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans[env]
    groups = {rc["name"]: after(rc) for rc in resources(plan, "scaleway_instance_security_group")}
    assert groups, "no security group planned"
    for name, group in groups.items():
        assert group["inbound_default_policy"] == "drop", name
        ssh = [r for r in group["inbound_rule"] if r["port"] == 22]
        assert sorted(r["ip_range"] for r in ssh) == sorted(ADMIN_CIDRS), name
        for rule in group["inbound_rule"]:
            network = ipaddress.ip_network(rule["ip_range"])
            if network.prefixlen == 0:
                assert rule["port"] in (80, 443), f"{name} opens {rule} to the world"
    # Each instance is attached to one of these groups (else Scaleway attaches an open default).
    refs = config_references(plan, "scaleway_instance_server.host", "security_group_id")
    assert {r for r in refs if r.startswith("scaleway_instance_security_group.")}


def test_cloud_init_prepares_the_host_for_ansible(plans: dict[str, dict[str, Any]]) -> None:
    plan = plans["dev"]
    values = plan_values(plan)
    for rc in resources(plan, "scaleway_instance_server"):
        user_data = after(rc)["user_data"]["cloud-init"]
        assert user_data.startswith("#cloud-config\n")
        config = yaml.safe_load(user_data)
        (user,) = config["users"]
        assert user["name"] == values["admin_username"]
        assert user["ssh_authorized_keys"] == SSH_KEYS
        assert "NOPASSWD" in user["sudo"]
        assert {"python3", "python3-apt"} <= set(config["packages"])
        assert config["ssh_pwauth"] is False
        assert config["disable_root"] is True
        assert config["hostname"] == after(rc)["name"]


def test_prod_load_balancer_probes_readiness(plans: dict[str, dict[str, Any]]) -> None:
    plan = plans["prod"]
    values = plan_values(plan)
    (backend,) = [after(rc) for rc in resources(plan, "scaleway_lb_backend")]
    assert backend["forward_port"] == values["stack_ports"]["http"]
    assert backend["health_check_http"][0]["uri"] == values["health_check_path"] == "/readyz"
    # A refused connection (a drained or dead instance) is retried on another instance: the
    # rolling deploy's zero failures rest on it (tests/rehearsal/test_prod_stack.py).
    assert backend["redispatch_attempt_count"] == 1 and backend["max_retries"] >= 1
    # A host drained through its health check keeps answering what it already has in flight.
    assert backend["on_marked_down_action"] == "none"
    (lb,) = [after(rc) for rc in resources(plan, "scaleway_lb")]
    assert lb["private_network"], "the load balancer must reach the instances privately"
    # Its servers are the service instances' private addresses: known only after apply, and
    # selected from the service hosts alone (never the control instance).
    (change,) = resources(plan, "scaleway_lb_backend")
    assert change["change"]["after_unknown"]["server_ips"]
    refs = config_references(plan, "scaleway_lb_backend.service", "server_ips")
    assert {"local.private_ipv4", "local.service_hosts"} <= refs


@pytest.mark.parametrize("env", ENVS)
def test_inventory_output(env: str, plans: dict[str, dict[str, Any]]) -> None:
    """The inventory output groups every instance by role, with its IPs, and carries the stack's
    settings (ports, buckets, registry) so that Ansible needs nothing copied by hand."""
    plan = plans[env]
    values = plan_values(plan)
    inventory = plan["output_changes"]["ansible_inventory"]
    known, unknown = inventory["after"]["all"], inventory["after_unknown"]["all"]
    servers = {
        after(rc)["name"]: after(rc)["tags"] for rc in resources(plan, "scaleway_instance_server")
    }
    for role in ("service", "control"):
        hosts = set(known["children"][role]["hosts"])
        assert hosts == {n for n, tags in servers.items() if f"role={role}" in tags}
        for host in hosts:
            pending = unknown["children"][role]["hosts"][host]
            assert pending["ansible_host"] is True and pending["private_ip"] is True
    group_vars = known["vars"]
    assert group_vars["cepage_environment"] == env
    assert group_vars["cepage_ports"] == values["stack_ports"]
    # stack_ports is the one home of these numbers: each one reaches the deployment (the security
    # group or the load balancer here, or the playbooks through the inventory).
    deploy_files = [*IAC.glob("*.tf"), *(IAC.parent / "playbooks").rglob("*.y*ml"),
                    *(IAC.parent / "playbooks").rglob("*.j2")]  # fmt: skip
    text = "\n".join(path.read_text() for path in deploy_files)
    for port in values["stack_ports"]:
        assert f"cepage_ports.{port}" in text or f"var.stack_ports.{port}" in text, port
    assert group_vars["ansible_user"] == values["admin_username"]
    buckets = {after(rc)["name"] for rc in resources(plan, "scaleway_object_bucket")}
    assert set(group_vars["cepage_buckets"].values()) == buckets
    assert unknown["vars"]["cepage_registry_endpoint"] is True
    assert "password" not in json.dumps(inventory["after"]).replace("-password", "")


# Per-role credentials (iac/iam.tf): what each application may do, and nothing more.
ROLE_SETS = {
    "hosts": {"ContainerRegistryReadOnly", "ObjectStorageObjectsRead", "ObjectStorageObjectsWrite"},
    "backup": {"ObjectStorageObjectsRead", "ObjectStorageObjectsWrite"},
    # The retrain workflow (a GitHub secret): reads the production log, writes nothing.
    "retrain": {"ObjectStorageObjectsRead"},
}
# Sets that would let a key delete, manage, read secrets or change IAM.
POWERFUL = ("FullAccess", "Manager", "Delete", "IAM", "SecretManager", "AllProducts")


def by_name(plan: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {after(rc)["name"]: rc for rc in resources(plan, rtype)}


def secret_outputs(plan: dict[str, Any]) -> list[str]:
    """Outputs whose expression reads an API key's secret, or that are not marked sensitive
    although their value is."""
    found = []
    for name, output in plan["configuration"]["root_module"].get("outputs", {}).items():
        refs = {r for r in json.dumps(output.get("expression", {})).split('"') if "secret_key" in r}
        if refs and not output.get("sensitive"):
            found.append(name)
    return found


@pytest.mark.parametrize("env", ENVS)
def test_each_role_has_its_own_least_privilege_key(
    env: str, plans: dict[str, dict[str, Any]]
) -> None:
    """`hosts`, `backup` and `retrain` each get an application, a project-scoped policy with only
    their permission sets, an API key, and its key pair in Secret Manager; CI's keys are not
    here."""
    plan = plans[env]
    apps = by_name(plan, "scaleway_iam_application")
    assert set(apps) == {f"cepage-{env}-{role}" for role in ROLE_SETS}, "no ci-* key in iac/"
    policies = by_name(plan, "scaleway_iam_policy")
    assert set(policies) == set(apps)
    for role, allowed in ROLE_SETS.items():
        name = f"cepage-{env}-{role}"
        assert f"environment={env}" in after(apps[name])["tags"]
        (rule,) = after(policies[name])["rule"]
        assert set(rule["permission_set_names"]) == allowed, name
        assert not [p for p in rule["permission_set_names"] if any(w in p for w in POWERFUL)]
        # Scoped to the project (known after apply), never to the Organization.
        assert rule["organization_id"] is None
        (pending,) = policies[name]["change"]["after_unknown"]["rule"]
        assert pending["project_ids"] is True
    refs = config_references(plan, "scaleway_iam_policy.role", "application_id")
    assert "scaleway_iam_application.role" in refs
    keys = resources(plan, "scaleway_iam_api_key")
    assert {rc["index"] for rc in keys} == set(ROLE_SETS)
    assert "scaleway_iam_application.role" in config_references(
        plan, "scaleway_iam_api_key.role", "application_id"
    )
    # Each key pair is kept in Secret Manager, with the environment's other secrets.
    secrets = by_name(plan, "scaleway_secret")
    for role in ROLE_SETS:
        assert after(secrets[f"{role}-api-key"])["path"] == f"/cepage/{env}"
    refs = config_references(plan, "scaleway_secret_version.api_key", "data")
    assert "scaleway_iam_api_key.role" in refs
    # Ansible finds the keys by Secret Manager id; no output carries a secret key.
    inventory = plan["output_changes"]["ansible_inventory"]["after_unknown"]["all"]["vars"]
    assert set(inventory["cepage_api_key_secret_ids"]) == set(ROLE_SETS)
    assert secret_outputs(plan) == []
    assert "secret_key" not in json.dumps(plan["output_changes"])


@pytest.mark.parametrize("env", ENVS)
def test_production_log_bucket(env: str, plans: dict[str, dict[str, Any]]) -> None:
    """The production log has its own private bucket whose files expire after
    production_log_retention_days (personal data is not kept for ever), not versioned (an expired
    file is gone, not an old version); its name reaches Ansible and the `buckets` output."""
    plan = plans[env]
    values = plan_values(plan)
    assert values["production_log_retention_days"] == 365
    buckets = by_name(plan, "scaleway_object_bucket")
    matching = [n for n in buckets if n.endswith("-production-log")]
    assert len(matching) == 1, sorted(buckets)
    bucket = after(buckets[matching[0]])
    assert matching[0].startswith(f"cepage-{env}-"), matching
    rules = {rule["id"]: rule for rule in bucket["lifecycle_rule"]}
    assert rules["expire-old-production-log"]["enabled"] is True
    (expiration,) = rules["expire-old-production-log"]["expiration"]
    assert expiration["days"] == 365
    assert not any(v.get("enabled") for v in bucket.get("versioning") or [])
    acls = [after(rc) for rc in resources(plan, "scaleway_object_bucket_acl")]
    assert len(acls) == len(buckets) and {a["acl"] for a in acls} == {"private"}
    inventory = plan["output_changes"]["ansible_inventory"]["after"]["all"]["vars"]
    assert inventory["cepage_buckets"]["production_log"] == matching[0]
    assert plan["output_changes"]["buckets"]["after"]["production_log"] == matching[0]


def test_iam_names_fit_scaleway_limits(clone: Callable[..., Workdir], bootstrap: Workdir) -> None:
    """The IAM API refuses names over 64 characters and descriptions over 200: check both with
    the longest project name, in prod's plan and the bootstrap's."""
    longest = {"project_name": "p" * 20}
    result, prod = clone().plan(["envs/prod.tfvars"], longest, name="long")
    assert prod is not None, result.text
    result, ci = bootstrap.plan(variables={**longest, "name_suffix": "acme"}, name="long")
    assert ci is not None, result.text
    checked = 0
    for plan in (prod, ci):
        for rc in resources(plan):
            if rc["type"].startswith("scaleway_iam_"):
                values = after(rc)
                assert len(values.get("name") or "") <= 64, (rc["address"], values["name"])
                assert len(values.get("description") or "") <= 200, (rc["address"], values)
                checked += 1
    assert checked == 3 * (len(ROLE_SETS) + 1 + len(ENVS))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("admin_cidrs", '["0.0.0.0/0"]', "must not open SSH to the world"),
        ("admin_cidrs", '["::/0"]', "must not open SSH to the world"),
        ("admin_cidrs", '["10.0.0.300/32"]', "must be a CIDR range"),
        ("admin_cidrs", "[]", "at least one CIDR"),
        ("ssh_public_keys", '["not a key"]', "OpenSSH public key"),
        ("environment", "staging", 'must be "dev" or "prod"'),
        ("service_instance_count", "0", "between 1 and 10"),
        ("instance_type", "play2-nano", "upper case"),
        ("name_suffix", "Has_Upper", "1-12 lowercase letters and digits"),
        ("stack_ports", '{"api": 443}', "cannot share a port"),
        ("data_volume_iops", "7000", "5000 or 15000"),
        ("production_log_retention_days", "0", "between 1 and 3650"),
    ],
)
def test_wrong_values_are_refused(
    variable: str, value: str, message: str, clone: Callable[..., Workdir]
) -> None:
    workdir = clone()
    result, plan = workdir.plan(["envs/dev.tfvars"], {variable: value})
    assert plan is None, f"{variable}={value} was accepted"
    assert "Invalid value for variable" in result.text
    assert message in " ".join(result.text.split()), result.text


def test_bootstrap_plan(bootstrap: Workdir) -> None:
    result, plan = bootstrap.plan(variables={"name_suffix": "acme"})
    assert plan is not None, result.text
    (bucket,) = [after(rc) for rc in resources(plan, "scaleway_object_bucket")]
    assert bucket["name"] == "cepage-tfstate-acme"
    assert bucket["versioning"] == [{"enabled": True}]
    (acl,) = [after(rc) for rc in resources(plan, "scaleway_object_bucket_acl")]
    assert acl["acl"] == "private"


def test_bootstrap_ci_keys(bootstrap: Workdir) -> None:
    """CI's keys live in the bootstrap's state, out of reach of the plan key: one read-only
    `ci-plan`, one `ci-apply-<env>` per environment; each key pair in Secret Manager."""
    result, plan = bootstrap.plan(variables={"name_suffix": "acme"}, name="ci")
    assert plan is not None, result.text
    changes = by_name(plan, "scaleway_iam_policy")
    apps = set(by_name(plan, "scaleway_iam_application"))
    expected = {"cepage-ci-plan", *(f"cepage-ci-apply-{env}" for env in ENVS)}
    assert apps == set(changes) == expected

    def sets(name: str, scope: str) -> set[str]:
        """Permission sets of the rules scoped to `project` (the state bucket's project, known
        after apply) or to the `organization` (the application's, known after apply)."""
        found: set[str] = set()
        rules = after(changes[name])["rule"]
        pending = changes[name]["change"]["after_unknown"]["rule"]
        for rule, unknown in zip(rules, pending, strict=True):
            # Each rule is scoped to the Organization or to projects, never both.
            kind = {
                "project": bool(unknown.get("project_ids")) and rule.get("organization_id") is None,
                "organization": bool(unknown.get("organization_id"))
                and rule.get("project_ids") is None,
            }
            assert sum(kind.values()) == 1, (name, rule, unknown)
            if kind[scope]:
                found |= set(rule["permission_set_names"])
        return found

    # ci-plan reads, and only reads.
    plan_sets = sets("cepage-ci-plan", "project") | sets("cepage-ci-plan", "organization")
    assert plan_sets and all(s.endswith("ReadOnly") for s in plan_sets), plan_sets
    for env in ENVS:
        name = f"cepage-ci-apply-{env}"
        project = sets(name, "project")
        assert {
            "InstancesFullAccess",
            "ObjectStorageFullAccess",
            "SecretManagerFullAccess",
        } <= project
        # Never every product nor the Organization: only what iac/ manages.
        assert "AllProductsFullAccess" not in project
        assert sets(name, "organization") == {"IAMApplicationManager", "IAMPolicyManager"}
    keys = resources(plan, "scaleway_iam_api_key")
    assert {rc["index"] for rc in keys} == {a.removeprefix("cepage-") for a in expected}
    secrets = {after(rc)["name"]: after(rc) for rc in resources(plan, "scaleway_secret")}
    assert set(secrets) == {f"{a.removeprefix('cepage-')}-api-key" for a in expected}
    assert {s["path"] for s in secrets.values()} == {"/cepage/ci"}
    assert "scaleway_iam_api_key.ci" in config_references(
        plan, "scaleway_secret_version.ci", "data"
    )
    assert secret_outputs(plan) == []
    assert "secret_key" not in json.dumps(plan.get("output_changes", {}))


def test_prod_with_a_domain(clone: Callable[..., Workdir]) -> None:
    """A domain adds HTTPS on the load balancer and the DNS records to create."""
    domain = "ml.example.org"
    result, plan = clone().plan(["envs/prod.tfvars"], {"domain_name": domain})
    assert plan is not None, result.text
    (certificate,) = [after(rc) for rc in resources(plan, "scaleway_lb_certificate")]
    assert certificate["letsencrypt"][0]["common_name"] == domain
    assert certificate["letsencrypt"][0]["subject_alternative_name"] == [f"api.{domain}"]
    frontends = {after(rc)["inbound_port"]: rc for rc in resources(plan, "scaleway_lb_frontend")}
    assert set(frontends) == {80, 443}
    refs = config_references(plan, "scaleway_lb_frontend.https", "certificate_ids")
    assert "scaleway_lb_certificate.main" in refs
    # Port 80 only redirects to HTTPS (security item 6), except the ACME challenge.
    (acl,) = [after(rc) for rc in resources(plan, "scaleway_lb_acl")]
    assert "scaleway_lb_frontend.http" in config_references(
        plan, "scaleway_lb_acl.https_redirect", "frontend_id"
    )
    assert acl["action"][0]["type"] == "redirect"
    assert acl["action"][0]["redirect"][0] == {"type": "scheme", "target": "https", "code": 308}
    assert acl["match"][0]["invert"] is True
    assert acl["match"][0]["http_filter_value"] == ["/.well-known/acme-challenge/"]
    (backend,) = [after(rc) for rc in resources(plan, "scaleway_lb_backend")]
    assert backend["health_check_http"][0]["host_header"] == f"api.{domain}"
    records = plan["output_changes"]["dns_records"]["after_unknown"]
    assert set(records) == {
        domain,
        f"api.{domain}",
        *(f"{s}.{domain}" for s in ("mlflow", "grafana", "prometheus", "alertmanager")),
    }
    inventory_vars = plan["output_changes"]["ansible_inventory"]["after"]["all"]["vars"]
    assert inventory_vars["cepage_tls_termination"] == "load_balancer"
    assert inventory_vars["cepage_base_url"] == f"https://{domain}"
    assert inventory_vars["cepage_domain_name"] == inventory_vars["cepage_admin_domain_name"]
    urls = plan["output_changes"]["urls"]["after"]
    assert urls["api"] == f"https://api.{domain}"
    assert urls["mlflow"] == f"https://mlflow.{domain}"
    assert check_status(plan, "prod_has_a_domain") == "pass"


def test_prod_without_a_domain_still_has_names_and_certificates(
    plans: dict[str, dict[str, Any]],
) -> None:
    """No domain: the entry point's and the control host's names under ip_dns_zone (their IPs,
    known after apply), certified by Let's Encrypt on the load balancer; no DNS record to make,
    and every URL the workflows read is an output (issue 12: deploy.yml never rebuilds a name)."""
    plan = plans["prod"]
    assert plan_values(plan)["domain_name"] == ""
    (certificate,) = resources(plan, "scaleway_lb_certificate")
    assert certificate["change"]["after_unknown"]["letsencrypt"][0]["common_name"] is True
    frontends = {after(rc)["inbound_port"] for rc in resources(plan, "scaleway_lb_frontend")}
    assert frontends == {80, 443}
    assert plan["output_changes"]["dns_records"]["after"] == {}
    urls = plan["output_changes"]["urls"]["after_unknown"]
    for site in ("api", "mlflow", "grafana", "prometheus", "alertmanager"):
        assert urls[site] is True, site
    # The load balancer asks Let's Encrypt only, whose limit for a shared zone is often used up:
    # the plan warns (a Terraform check), it does not stop a trial.
    assert check_status(plan, "prod_has_a_domain") == "fail"
    assert check_status(plans["dev"], "prod_has_a_domain") == "pass"
    groups = plan["output_changes"]["security_groups"]
    assert groups["after"]["zone"] == plan_values(plan)["zone"]
    assert groups["after_unknown"]["bastion"] is True
    assert groups["after_unknown"]["all"] == [True, True], "edge (control) and backend"


def check_status(plan: dict[str, Any], name: str) -> str:
    """The status Terraform gave the `check` block ``name`` in this plan."""
    (status,) = [c["status"] for c in plan.get("checks", []) if c["address"]["name"] == name]
    return str(status)


def test_no_names_at_all_means_plain_http(clone: Callable[..., Workdir]) -> None:
    """ip_dns_zone = "" without a domain: no certificate is requested, URLs use the IP."""
    result, plan = clone().plan(["envs/prod.tfvars"], {"ip_dns_zone": ""})
    assert plan is not None, result.text
    assert not resources(plan, "scaleway_lb_certificate")
    assert {after(rc)["inbound_port"] for rc in resources(plan, "scaleway_lb_frontend")} == {80}
    urls = plan["output_changes"]["urls"]
    assert urls["after"]["mlflow"] is None
    assert urls["after_unknown"]["base"] is True


def test_prod_database_survives_a_node(plans: dict[str, dict[str, Any]]) -> None:
    """prod's managed PostgreSQL (the registry's store) is a two-node cluster; dev has none."""
    (database,) = [after(rc) for rc in resources(plans["prod"], "scaleway_rdb_instance")]
    assert database["is_ha_cluster"] is True
    assert not resources(plans["dev"], "scaleway_rdb_instance")


def test_dev_without_a_domain_has_no_certificate(plans: dict[str, dict[str, Any]]) -> None:
    plan = plans["dev"]
    assert not resources(plan, "scaleway_lb_certificate")
    assert not resources(plan, "scaleway_lb_acl")
    assert plan["output_changes"]["dns_records"]["after"] == {}
    inventory_vars = plan["output_changes"]["ansible_inventory"]["after"]["all"]["vars"]
    assert inventory_vars["cepage_tls_termination"] == "proxy"


def test_zone_must_be_in_region(clone: Callable[..., Workdir]) -> None:
    result, plan = clone().plan(["envs/dev.tfvars"], {"region": "nl-ams", "zone": "fr-par-1"})
    assert plan is None
    assert "must be in region" in " ".join(result.text.split()), result.text
