# Optional managed PostgreSQL for MLflow's backend store (managed_database = true, prod): reachable
# on the private network only (no public endpoint), encrypted at rest, with daily backups.

resource "scaleway_rdb_instance" "mlflow" {
  count = var.managed_database ? 1 : 0

  name               = "${local.name}-mlflow"
  node_type          = lower(var.database_node_type)
  engine             = var.database_engine
  is_ha_cluster      = var.database_ha
  volume_type        = "sbs_5k"
  volume_size_in_gb  = 10
  encryption_at_rest = true
  tags               = local.tags

  user_name = "mlflow"
  password  = terraform_data.password["database-password"].output

  disable_backup            = false
  backup_schedule_frequency = 24
  backup_schedule_retention = var.database_backup_retention_days
  backup_same_region        = true

  private_network {
    pn_id       = scaleway_vpc_private_network.main.id
    enable_ipam = true
  }
}

resource "scaleway_rdb_database" "mlflow" {
  count = var.managed_database ? 1 : 0

  instance_id = scaleway_rdb_instance.mlflow[0].id
  name        = "mlflow"
}
