# What the environments' backend configuration (iac/envs/<env>.backend.hcl) needs.

output "state_bucket" {
  description = "Name of the state bucket: put it in iac/envs/<env>.backend.hcl (`bucket = ...`)."
  value       = scaleway_object_bucket.state.name
}

output "backend_endpoint" {
  description = "S3 endpoint of the state bucket's region, for envs/<env>.backend.hcl."
  value       = "https://s3.${var.region}.scw.cloud"
}

output "ci_key_secret_ids" {
  description = "Secret Manager ids (region/uuid) of the CI keys' pairs, by application (ci-plan, ci-apply-dev, ci-apply-prod): `make bootstrap INIT_VAULT=1` puts ci-apply-ENV's into the environment's vault. Ids only: the keys stay in Secret Manager."
  value       = { for k, s in scaleway_secret.ci : k => s.id }
}
