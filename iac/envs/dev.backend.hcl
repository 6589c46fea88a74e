# Remote state of the dev environment on Scaleway Object Storage (S3 API).
# Replace CHANGE-ME with the state bucket made by iac/bootstrap (its `state_bucket` output).
# No credentials here: iac/infra.sh exports AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from SCW_*.
bucket = "CHANGE-ME"
key    = "cepage/dev/terraform.tfstate"
region = "fr-par"
endpoints = {
  s3 = "https://s3.fr-par.scw.cloud"
}
# Scaleway is not AWS: skip the AWS-only checks.
skip_credentials_validation = true
skip_region_validation      = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_s3_checksum            = true
