# Bootstrap: the Object Storage bucket that holds the Terraform state of every environment.
# Run once per Scaleway project, before the first `make infra-plan` (iac/infra.sh bootstrap).
# Its own state is local (bootstrap/terraform.tfstate, gitignored): it holds no secret, and if it
# is lost the bucket can be imported back (terraform import scaleway_object_bucket.state fr-par/NAME).

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    scaleway = {
      source  = "scaleway/scaleway"
      version = "2.81.0"
    }
  }
}

# Credentials from SCW_* only.
provider "scaleway" {
  region = var.region
}

variable "project_name" {
  description = "Prefix of the state bucket's name and value of its `project` tag."
  type        = string
  default     = "cepage"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.project_name))
    error_message = "project_name: 3-20 characters, lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "name_suffix" {
  description = "Suffix that makes the bucket name globally unique, e.g. your organisation's short name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{1,12}$", var.name_suffix))
    error_message = "name_suffix: 1-12 lowercase letters and digits."
  }
}

variable "region" {
  description = "Scaleway region of the state bucket (the environments' backend config must name the same)."
  type        = string
  default     = "fr-par"

  validation {
    condition     = contains(["fr-par", "nl-ams", "pl-waw"], var.region)
    error_message = "region must be one of fr-par, nl-ams, pl-waw."
  }
}

variable "state_versions_kept_days" {
  description = "Days an overwritten state version is kept (to roll back a broken state)."
  type        = number
  default     = 90

  validation {
    condition     = var.state_versions_kept_days >= 7
    error_message = "Keep old state versions at least 7 days."
  }
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

output "state_bucket" {
  description = "Name of the state bucket: put it in iac/envs/<env>.backend.hcl (`bucket = ...`)."
  value       = scaleway_object_bucket.state.name
}

output "backend_endpoint" {
  description = "S3 endpoint of the state bucket's region, for envs/<env>.backend.hcl."
  value       = "https://s3.${var.region}.scw.cloud"
}
