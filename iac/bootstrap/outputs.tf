# What the environments' backend configuration (iac/envs/<env>.backend.hcl) needs.

output "state_bucket" {
  description = "Name of the state bucket: put it in iac/envs/<env>.backend.hcl (`bucket = ...`)."
  value       = scaleway_object_bucket.state.name
}

output "backend_endpoint" {
  description = "S3 endpoint of the state bucket's region, for envs/<env>.backend.hcl."
  value       = "https://s3.${var.region}.scw.cloud"
}
