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
  # Public names (with domain_name): the app and its API go to the public entry point (the load
  # balancer in HA), the operators' UIs to the host that runs them. dns_records (outputs.tf) lists
  # the records to create; the reverse proxy routes by these names.
  service_hostnames = var.domain_name == "" ? [] : [var.domain_name, "api.${var.domain_name}"]
  control_hostnames = var.domain_name == "" ? [] : [
    for s in ["mlflow", "grafana", "prometheus", "alertmanager"] : "${s}.${var.domain_name}"
  ]

  # The host that keeps the state: the data volume is attached to it.
  control_host = local.high_availability ? "${local.name}-control" : format("%s-service-%d", local.name, 1)
}
