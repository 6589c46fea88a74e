# Terraform and provider versions of the bootstrap module (the provider pinned like iac/'s).

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    scaleway = {
      source  = "scaleway/scaleway"
      version = "2.81.0"
    }
  }
}
