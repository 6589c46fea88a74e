terraform {
  # 1.5+ for `check` blocks and the S3 backend's `endpoints`; tested with 1.15.
  required_version = ">= 1.5.0"

  required_providers {
    scaleway = {
      source = "scaleway/scaleway"
      # Exact: tests/tools/scaleway-provider.sh reads this line to build the same version offline.
      version = "2.81.0"
    }
  }

  # Remote state on Scaleway Object Storage (S3 API). The rest of the configuration comes from
  # envs/<env>.backend.hcl; the credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, which
  # iac/infra.sh sets from SCW_ACCESS_KEY/SCW_SECRET_KEY. See docs/install.md#3-scaleway-the-infrastructure-with-terraform.
  backend "s3" {}
}

# Every credential comes from the standard SCW_* environment (SCW_ACCESS_KEY, SCW_SECRET_KEY,
# SCW_DEFAULT_PROJECT_ID, SCW_DEFAULT_ORGANIZATION_ID): never from a Terraform variable.
provider "scaleway" {
  region = var.region
  zone   = var.zone
}
