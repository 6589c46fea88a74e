# Network: a private network for instance-to-instance, load balancer and database traffic, one
# flexible IPv4 per instance (SSH for Ansible, outbound for image pulls), and security groups that
# drop every inbound packet except what each role needs. Security groups filter the public
# interface only; traffic on the private network is not filtered by them.

resource "scaleway_vpc" "main" {
  name = local.name
  tags = local.tags
}

locals {
  # The private network's range: instances, load balancer and database talk over it. Ansible gets
  # it from the outputs (host firewall, the proxy's trusted proxies).
  private_network_cidr = "172.16.32.0/22"
}

resource "scaleway_vpc_private_network" "main" {
  name   = local.name
  vpc_id = scaleway_vpc.main.id
  tags   = local.tags

  ipv4_subnet {
    subnet = local.private_network_cidr
  }

  lifecycle {
    precondition {
      condition     = startswith(var.zone, "${var.region}-")
      error_message = "zone (${var.zone}) must be in region (${var.region}), e.g. ${var.region}-1."
    }
  }
}

resource "scaleway_instance_ip" "host" {
  for_each = local.hosts

  type = "routed_ipv4"
  tags = local.tags
}

# Hosts that receive public web traffic themselves: the single instance in dev, the control
# instance (Grafana, MLflow UI behind its reverse proxy) in HA.
resource "scaleway_instance_security_group" "edge" {
  name                    = "${local.name}-edge"
  description             = "${local.name}: 80/443 from anywhere, SSH from the admin ranges, everything else dropped"
  inbound_default_policy  = "drop"
  outbound_default_policy = "accept"
  stateful                = true
  tags                    = local.tags

  dynamic "inbound_rule" {
    for_each = toset([var.stack_ports.http, var.stack_ports.https])
    content {
      action   = "accept"
      protocol = "TCP"
      port     = inbound_rule.value
      ip_range = "0.0.0.0/0"
    }
  }

  dynamic "inbound_rule" {
    for_each = toset(var.admin_cidrs)
    content {
      action   = "accept"
      protocol = "TCP"
      port     = 22
      ip_range = inbound_rule.value
    }
  }
}

# Service instances behind the load balancer: web traffic comes from the load balancer over the
# private network, so their public interface only takes SSH from the admin ranges.
resource "scaleway_instance_security_group" "backend" {
  count = local.high_availability ? 1 : 0

  name                    = "${local.name}-backend"
  description             = "${local.name}: SSH from the admin ranges only; web traffic arrives from the load balancer over the private network"
  inbound_default_policy  = "drop"
  outbound_default_policy = "accept"
  stateful                = true
  tags                    = local.tags

  dynamic "inbound_rule" {
    for_each = toset(var.admin_cidrs)
    content {
      action   = "accept"
      protocol = "TCP"
      port     = 22
      ip_range = inbound_rule.value
    }
  }
}
