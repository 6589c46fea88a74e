# prod: two service instances (reverse proxy, model service, UI) behind a load balancer with a
# health check, a control instance (MLflow, Prometheus, Grafana, Alertmanager) and a managed
# PostgreSQL with daily backups as MLflow's backend store.
# Operator-specific inputs are not here: set TF_VAR_admin_cidrs and TF_VAR_ssh_public_keys (and
# domain_name for HTTPS), or write them in envs/prod.local.tfvars (gitignored).
environment                    = "prod"
service_instance_count         = 2
instance_type                  = "PLAY2-NANO"  # 2 vCPU, 4 GB per service instance
control_instance_type          = "PLAY2-MICRO" # 4 vCPU, 8 GB: MLflow + monitoring
root_volume_size_gb            = 20
data_volume_size_gb            = 50
data_volume_iops               = 5000
load_balancer_type             = "LB-S"
managed_database               = true
database_node_type             = "DB-DEV-S"
database_ha                    = true # two nodes: the registry survives a node's loss (docs/architecture.md)
database_backup_retention_days = 14
backup_retention_days          = 90
force_destroy_buckets          = false
