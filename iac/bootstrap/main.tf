# Bootstrap: the Object Storage bucket that holds the Terraform state of every environment.
# Run once per Scaleway project, before the first `make infra-plan` (iac/infra.sh bootstrap).
# It also creates CI's IAM applications and API keys (iam.tf). Its own state is local
# (bootstrap/terraform.tfstate, gitignored) and holds those keys' secrets: keep it like a
# credential, never in the repository or the state bucket that CI reads. If it is lost, import the
# bucket back (terraform import scaleway_object_bucket.state fr-par/NAME) and let the next apply
# create new CI keys (then delete the old applications in the console).

# Credentials from SCW_* only.
provider "scaleway" {
  region = var.region
}

resource "scaleway_object_bucket" "state" {
  name = "${var.project_name}-tfstate-${var.name_suffix}"
  tags = {
    project     = var.project_name
    environment = "shared"
    managed-by  = "terraform"
    purpose     = "terraform-state"
  }

  # Every apply writes a new version: a broken state can be rolled back.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    id      = "expire-old-state-versions"
    enabled = true

    noncurrent_version_expiration {
      noncurrent_days = var.state_versions_kept_days
    }
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "scaleway_object_bucket_acl" "state" {
  bucket = scaleway_object_bucket.state.id
  acl    = "private"
}
