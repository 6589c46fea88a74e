# Names, tags and the shape of the deployment, derived once from the inputs.

locals {
  name = "${var.project_name}-${var.environment}"
  # Globally unique names (buckets, registry namespace) take the optional suffix.
  unique = var.name_suffix == "" ? local.name : "${local.name}-${var.name_suffix}"

  # Scaleway tags are plain strings on most resources (key=value by convention here) and a map on
  # Object Storage buckets. Every taggable resource carries at least project and environment.
  tag_map = merge(var.extra_tags, {
    project     = var.project_name
    environment = var.environment
    managed-by  = "terraform"
  })
  tags = [for k in sort(keys(local.tag_map)) : "${k}=${local.tag_map[k]}"]

  # One instance runs everything; with several service instances, those sit behind a load
  # balancer and the stateful singletons (MLflow, Prometheus, Grafana, Alertmanager) move to a
  # control instance, so that no service instance is special.
  high_availability = var.service_instance_count > 1

  service_roles = local.high_availability ? ["service"] : ["service", "control"]
  hosts = merge(
    {
      for i in range(var.service_instance_count) : format("%s-service-%d", local.name, i + 1) => {
        type  = var.instance_type
        roles = local.service_roles
        edge  = !local.high_availability
      }
    },
    local.high_availability ? {
      "${local.name}-control" = {
        type  = var.control_instance_type
        roles = ["control"]
        edge  = true
      }
    } : {},
  )
  # Public names: the app and its API on the public entry point (the load balancer in HA), the
  # operators' UIs (mlflow., grafana., prometheus., alertmanager.) on the host that runs them. With
  # domain_name both are that domain (dns_records, outputs.tf, lists the records to create);
  # without it, names under ip_dns_zone that embed each IP, which resolve with no set-up, so
  # Let's Encrypt can certify them. The reverse proxy routes by these names in both cases.
  # `named` is known at plan time (counts depend on it); the names themselves wait for the IPs.
  named             = var.domain_name != "" || var.ip_dns_zone != ""
  entry_ip          = local.high_availability ? scaleway_lb_ip.main[0].ip_address : scaleway_instance_ip.host[local.control_host].address
  control_ip        = scaleway_instance_ip.host[local.control_host].address
  app_domain        = var.domain_name != "" ? var.domain_name : (var.ip_dns_zone != "" ? "${replace(local.entry_ip, ".", "-")}.${var.ip_dns_zone}" : "")
  admin_domain      = var.domain_name != "" ? var.domain_name : (var.ip_dns_zone != "" ? "${replace(local.control_ip, ".", "-")}.${var.ip_dns_zone}" : "")
  service_hostnames = local.named ? [local.app_domain, "api.${local.app_domain}"] : []
  control_hostnames = local.named ? [
    for s in ["mlflow", "grafana", "prometheus", "alertmanager"] : "${s}.${local.admin_domain}"
  ] : []

  # The host that keeps the state: the data volume is attached to it.
  control_host = local.high_availability ? "${local.name}-control" : format("%s-service-%d", local.name, 1)
}
