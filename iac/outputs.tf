# Outputs: the interface for Ansible and CI. Nothing here is secret: passwords stay in Secret
# Manager and are referenced by id. `terraform output -json ansible_inventory` is a complete
# Ansible inventory (the YAML inventory plugin reads JSON); the other outputs are its parts.

locals {
  public_ip = local.entry_ip
  base_url  = local.named ? "https://${local.app_domain}" : "http://${local.public_ip}"
  # Every site's URL, with a domain or without (ip_dns_zone's names): what the workflows, the
  # bootstrap and the smoke test read, so none of them rebuilds a name.
  site_urls = local.named ? {
    api          = "https://api.${local.app_domain}"
    mlflow       = "https://mlflow.${local.admin_domain}"
    grafana      = "https://grafana.${local.admin_domain}"
    prometheus   = "https://prometheus.${local.admin_domain}"
    alertmanager = "https://alertmanager.${local.admin_domain}"
    } : {
    api          = local.base_url
    mlflow       = null
    grafana      = null
    prometheus   = null
    alertmanager = null
  }

  host_facts = {
    for name, h in local.hosts : name => {
      id          = scaleway_instance_server.host[name].id
      public_ip   = scaleway_instance_ip.host[name].address
      private_ip  = local.private_ipv4[name]
      roles       = h.roles
      type        = h.type
      data_volume = name == local.control_host ? scaleway_block_volume.data.id : null
    }
  }

  database = var.managed_database ? {
    host = one(scaleway_rdb_instance.mlflow[0].private_network).ip
    port = one(scaleway_rdb_instance.mlflow[0].private_network).port
    name = scaleway_rdb_database.mlflow[0].name
    user = scaleway_rdb_instance.mlflow[0].user_name
  } : null

  stack_vars = {
    cepage_environment = var.environment
    cepage_region      = var.region
    cepage_base_url    = local.base_url
    # The app's name (domain_name, or the entry point's ip_dns_zone name; empty: none) and the
    # operators' sites' (the same with a domain; the control host's own name without one).
    cepage_domain_name       = local.app_domain
    cepage_admin_domain_name = local.admin_domain
    cepage_acme_email        = var.acme_email
    cepage_ports             = var.stack_ports
    cepage_health_check_path = var.health_check_path
    cepage_tls_termination   = local.high_availability ? "load_balancer" : "proxy"
    cepage_hostnames         = { service = local.service_hostnames, control = local.control_hostnames }
    cepage_registry_endpoint = scaleway_registry_namespace.main.endpoint
    cepage_s3_endpoint       = "https://s3.${var.region}.scw.cloud"
    cepage_buckets = {
      mlflow_artifacts = scaleway_object_bucket.mlflow_artifacts.name
      backups          = scaleway_object_bucket.backups.name
      production_log   = scaleway_object_bucket.production_log.name
    }
    cepage_secret_ids         = { for k, s in scaleway_secret.generated : k => s.id }
    cepage_database           = local.database
    cepage_control_private_ip = local.private_ipv4[local.control_host]
    # The host firewall mirrors the security group: the same admin ranges and private network.
    cepage_admin_cidrs           = var.admin_cidrs
    cepage_private_network_cidr  = local.private_network_cidr
    cepage_backup_retention_days = var.backup_retention_days
    # Secret Manager ids of the per-role API keys (iam.tf), JSON {access_key, secret_key}: `hosts`
    # for the stack's .env (registry, artifacts) and the production log's sync, `backup` for the
    # backup job; `retrain` is for the retrain workflow's GitHub secrets (Ansible does not read it).
    cepage_api_key_secret_ids = { for k, s in scaleway_secret.api_key : k => s.id }
  }
}

output "ansible_inventory" {
  description = "Ansible inventory: groups `service` and `control`, each host with ansible_host (public IP), private_ip and roles; the stack's settings as group vars of `all`."
  value = {
    all = {
      vars = merge(local.stack_vars, {
        ansible_user               = var.admin_username
        ansible_python_interpreter = "/usr/bin/python3"
      })
      children = {
        for role in ["service", "control"] : role => {
          hosts = {
            for name, h in local.host_facts : name => {
              ansible_host = h.public_ip
              private_ip   = h.private_ip
              cepage_roles = h.roles
              data_volume  = h.data_volume
            } if contains(h.roles, role)
          }
        }
      }
    }
  }
}

output "hosts" {
  description = "Every instance by name: id, public and private IPv4, roles, commercial type, attached data volume id."
  value       = local.host_facts
}

output "registry_endpoint" {
  description = "Container Registry namespace endpoint to tag and push images to (rg.<region>.scw.cloud/<namespace>)."
  value       = scaleway_registry_namespace.main.endpoint
}

output "buckets" {
  description = "Object Storage bucket names and the S3 endpoint of the region."
  value = {
    mlflow_artifacts = scaleway_object_bucket.mlflow_artifacts.name
    backups          = scaleway_object_bucket.backups.name
    production_log   = scaleway_object_bucket.production_log.name
    endpoint         = "https://s3.${var.region}.scw.cloud"
    region           = var.region
  }
}

output "urls" {
  description = "Public URLs: the app behind the reverse proxy (or the load balancer), the API, the admin sites (null without names), and the SSH targets."
  value = merge(local.site_urls, {
    base   = local.base_url
    public = local.public_ip
    ssh    = { for name, h in local.host_facts : name => "${var.admin_username}@${h.public_ip}" }
  })
}

output "dns_records" {
  description = "A records to create when domain_name is set: hostname => public IPv4 (empty without a domain: ip_dns_zone's names need no record)."
  value = var.domain_name == "" ? {} : merge(
    { for h in local.service_hostnames : h => local.public_ip },
    { for h in local.control_hostnames : h => local.control_ip },
  )
}

output "security_groups" {
  description = "Security groups by purpose: `bastion` is the edge host's (dev's single host, prod's control host), the only one CI opens SSH on for the runner's own address during a run (scripts/ci_access.py); `all` lists every one (zone-less ids)."
  value = {
    zone    = var.zone
    bastion = split("/", scaleway_instance_security_group.edge.id)[1]
    all = concat(
      [split("/", scaleway_instance_security_group.edge.id)[1]],
      [for sg in scaleway_instance_security_group.backend : split("/", sg.id)[1]],
    )
  }
}

output "load_balancer" {
  description = "Load balancer id and public IP, or null without one (service_instance_count = 1)."
  value = local.high_availability ? {
    id = scaleway_lb.main[0].id
    ip = scaleway_lb_ip.main[0].ip_address
  } : null
}

output "secret_ids" {
  description = "Secret Manager ids of the generated passwords, by name (read them with `scw secret version access`)."
  value       = { for k, s in scaleway_secret.generated : k => s.id }
}

output "api_keys" {
  description = "Per-role IAM applications (iam.tf): application id, access key id and the Secret Manager id that holds the key pair as JSON. The secret key itself is never an output."
  value = {
    for role, app in scaleway_iam_application.role : role => {
      application_id = app.id
      access_key     = scaleway_iam_api_key.role[role].access_key
      secret_id      = scaleway_secret.api_key[role].id
    }
  }
}

output "database" {
  description = "Managed PostgreSQL endpoint on the private network (host, port, database, user), or null when managed_database = false. Its password is the `database-password` secret."
  value       = local.database
}
