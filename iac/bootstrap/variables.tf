# Inputs of the bootstrap module: every variable typed, described and validated.

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

variable "environments" {
  description = "Environments that get their own `ci-apply-<env>` IAM application and API key (iam.tf), each for the GitHub environment of the same name."
  type        = list(string)
  default     = ["dev", "prod"]

  validation {
    condition     = length(var.environments) > 0 && alltrue([for e in var.environments : contains(["dev", "prod"], e)])
    error_message = "environments: a non-empty list of \"dev\" and/or \"prod\"."
  }
}
