# Compute: the instances and the data volume. cloud-init only prepares each host for Ansible
# (admin user, SSH keys, python3); playbooks/ does everything else.

resource "scaleway_instance_server" "host" {
  for_each = local.hosts

  name  = each.key
  type  = each.value.type
  image = var.instance_image
  tags  = concat(local.tags, [for r in each.value.roles : "role=${r}"])

  ip_id             = scaleway_instance_ip.host[each.key].id
  security_group_id = each.value.edge ? scaleway_instance_security_group.edge.id : scaleway_instance_security_group.backend[0].id

  # The data volume goes to the host that keeps the state (MLflow, Prometheus, Grafana).
  additional_volume_ids = each.key == local.control_host ? [scaleway_block_volume.data.id] : []

  root_volume {
    size_in_gb            = var.root_volume_size_gb
    volume_type           = "sbs_volume"
    delete_on_termination = true
  }

  private_network {
    pn_id = scaleway_vpc_private_network.main.id
  }

  user_data = {
    cloud-init = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
      hostname        = each.key
      admin_username  = var.admin_username
      ssh_public_keys = [for k in var.ssh_public_keys : trimspace(k)]
      roles           = each.value.roles
      environment     = var.environment
    })
  }
}

locals {
  # Each instance's IPv4 address on the private network (IPAM assigns it; IPv6 ones are skipped).
  private_ipv4 = {
    for name, server in scaleway_instance_server.host :
    name => one([for ip in server.private_ips : ip.address if can(regex("^[0-9.]+$", ip.address))])
  }
}

resource "scaleway_block_volume" "data" {
  name       = "${local.name}-data"
  iops       = var.data_volume_iops
  size_in_gb = var.data_volume_size_gb
  tags       = local.tags
}
