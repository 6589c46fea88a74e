# dev: one small instance runs the whole stack (reverse proxy, model service, UI, MLflow with its
# PostgreSQL in a container on the data volume, Prometheus, Grafana, Alertmanager).
# Operator-specific inputs are not here: set TF_VAR_admin_cidrs and TF_VAR_ssh_public_keys, or
# write them in envs/dev.local.tfvars (gitignored). See docs/install.md#3-scaleway-the-infrastructure-with-terraform.
environment            = "dev"
service_instance_count = 1
instance_type          = "PLAY2-NANO" # 2 vCPU, 4 GB
root_volume_size_gb    = 20
data_volume_size_gb    = 10
managed_database       = false
backup_retention_days  = 14
force_destroy_buckets  = true
