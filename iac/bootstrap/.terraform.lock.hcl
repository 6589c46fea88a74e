# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.
#
# Pins scaleway/scaleway 2.81.0. The registry's hashes are not recorded yet (this repository was
# set up on a machine that cannot reach the Terraform registry): the first `terraform init` with
# registry access verifies the provider's signature and adds them here. Commit that change, after
# `terraform providers lock -platform=linux_amd64 -platform=darwin_arm64 -platform=darwin_amd64`
# (see docs/install.md#3-scaleway-the-infrastructure-with-terraform).

provider "registry.terraform.io/scaleway/scaleway" {
  version     = "2.81.0"
  constraints = "2.81.0"
}
