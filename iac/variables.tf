# Inputs. Per-environment values live in envs/<env>.tfvars; values that belong to one operator
# (admin_cidrs, ssh_public_keys) come from TF_VAR_* or a gitignored envs/<env>.local.tfvars.
# No variable holds a credential: the Scaleway API keys come from SCW_* only, and every password
# the stack needs is generated here and stored in Secret Manager (secrets.tf).

# --- identity -----------------------------------------------------------------------------------

variable "project_name" {
  description = "Short name used as a prefix for every resource name and as the `project=` tag."
  type        = string
  default     = "cepage"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.project_name))
    error_message = "project_name: 3-20 characters, lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "environment" {
  description = "Deployment environment: `dev` (one instance) or `prod` (service instances behind a load balancer)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be \"dev\" or \"prod\"."
  }
}

variable "name_suffix" {
  description = "Suffix appended to the globally unique names (Object Storage buckets, registry namespace), e.g. your organisation's short name. Empty by default; set it if a name is taken."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^([a-z0-9]{1,12})?$", var.name_suffix))
    error_message = "name_suffix: empty, or 1-12 lowercase letters and digits."
  }
}

variable "extra_tags" {
  description = "Additional tags as key => value, added to the mandatory project, environment and managed-by tags."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_tags) : !contains(["project", "environment", "managed-by"], k)])
    error_message = "extra_tags cannot override the project, environment or managed-by tags."
  }
}

# --- location -----------------------------------------------------------------------------------

variable "region" {
  description = "Scaleway region for regional resources (Object Storage, registry, Secret Manager, VPC, database)."
  type        = string
  default     = "fr-par"

  validation {
    condition     = contains(["fr-par", "nl-ams", "pl-waw"], var.region)
    error_message = "region must be one of fr-par, nl-ams, pl-waw."
  }
}

variable "zone" {
  description = "Scaleway availability zone for zonal resources (instances, volumes, IPs, load balancer); must be in `region`."
  type        = string
  default     = "fr-par-1"

  validation {
    condition     = can(regex("^(fr-par|nl-ams|pl-waw)-[1-3]$", var.zone))
    error_message = "zone must look like fr-par-1, nl-ams-2, pl-waw-3."
  }
}

# --- access -------------------------------------------------------------------------------------

variable "admin_cidrs" {
  description = "CIDR ranges allowed to reach SSH (22) on the instances, e.g. [\"203.0.113.4/32\"]. No default: the operator must say where they connect from."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0
    error_message = "admin_cidrs needs at least one CIDR range (your public IP as x.x.x.x/32)."
  }
  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs: every entry must be a CIDR range such as 203.0.113.4/32."
  }
  validation {
    condition     = alltrue([for c in var.admin_cidrs : !can(cidrhost(c, 0)) || tonumber(split("/", c)[1]) >= 8])
    error_message = "admin_cidrs must not open SSH to the world: 0.0.0.0/0, ::/0 and other ranges wider than /8 are refused."
  }
}

variable "ssh_public_keys" {
  description = "Public SSH keys installed for the admin user (the one Ansible connects as). No default."
  type        = list(string)

  validation {
    condition     = length(var.ssh_public_keys) > 0
    error_message = "ssh_public_keys needs at least one public key."
  }
  validation {
    condition     = alltrue([for k in var.ssh_public_keys : can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com) [A-Za-z0-9+/=]+( .*)?$", trimspace(k)))])
    error_message = "ssh_public_keys: each entry must be an OpenSSH public key line (ssh-ed25519 AAAA... comment)."
  }
}

variable "admin_username" {
  description = "Login created by cloud-init on every instance, with sudo and the SSH keys; Ansible connects as this user."
  type        = string
  default     = "cepage"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,30}$", var.admin_username)) && var.admin_username != "root"
    error_message = "admin_username must be a valid Linux user name other than root."
  }
}

variable "domain_name" {
  description = "DNS name that will point at the public entry point (load balancer IP in HA, the instance IP otherwise). Empty: names under ip_dns_zone that embed the public IPs (e.g. 51-15-1-2.sslip.io), so HTTPS works without a domain."
  type        = string
  default     = ""

  validation {
    condition     = var.domain_name == "" || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be empty or a lowercase DNS name such as ml.example.org."
  }
}

variable "ip_dns_zone" {
  description = "Without domain_name: a wildcard DNS zone that answers a name embedding an IPv4 with that IPv4 (sslip.io: api.51-15-1-2.sslip.io -> 51.15.1.2), giving each environment real names and Let's Encrypt certificates with no DNS set-up. Its operator answers for those names: set domain_name for prod. Empty with no domain_name: plain HTTP on the IP."
  type        = string
  default     = "sslip.io"

  validation {
    condition     = var.ip_dns_zone == "" || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.ip_dns_zone))
    error_message = "ip_dns_zone must be empty or a lowercase DNS zone such as sslip.io or nip.io."
  }
}

variable "acme_email" {
  description = "Email for the certificate authorities' accounts (the instances' reverse proxy). With it, Caddy falls back to ZeroSSL when Let's Encrypt refuses a certificate, e.g. when a shared ip_dns_zone such as sslip.io has used up Let's Encrypt's weekly limit. Empty: Let's Encrypt only. An operator input: TF_VAR_acme_email or envs/ENV.local.tfvars."
  type        = string
  default     = ""

  validation {
    condition     = var.acme_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", var.acme_email))
    error_message = "acme_email must be empty or an email address."
  }
}

# --- compute ------------------------------------------------------------------------------------

variable "service_instance_count" {
  description = "Number of instances that run the model service and the UI. 1: everything on one instance. More than 1: they sit behind a load balancer and MLflow + monitoring move to a separate control instance."
  type        = number
  default     = 1

  validation {
    condition     = var.service_instance_count >= 1 && var.service_instance_count <= 10 && floor(var.service_instance_count) == var.service_instance_count
    error_message = "service_instance_count must be a whole number between 1 and 10."
  }
}

variable "instance_type" {
  description = "Commercial type of the service instances (and of the single instance when service_instance_count = 1), e.g. PLAY2-NANO."
  type        = string

  validation {
    condition     = can(regex("^[A-Z0-9]+(-[A-Z0-9]+)+$", var.instance_type))
    error_message = "instance_type must be a Scaleway commercial type in upper case, such as PLAY2-NANO or PRO2-XXS."
  }
}

variable "control_instance_type" {
  description = "Commercial type of the control instance (MLflow, Prometheus, Grafana, Alertmanager), used only when service_instance_count > 1."
  type        = string
  default     = "PLAY2-NANO"

  validation {
    condition     = can(regex("^[A-Z0-9]+(-[A-Z0-9]+)+$", var.control_instance_type))
    error_message = "control_instance_type must be a Scaleway commercial type in upper case, such as PLAY2-MICRO."
  }
}

variable "instance_image" {
  description = "Marketplace image label of every instance. cloud-init and the Ansible roles expect a Debian/Ubuntu family image."
  type        = string
  default     = "debian_bookworm"

  validation {
    condition     = can(regex("^(debian|ubuntu)_[a-z]+$", var.instance_image))
    error_message = "instance_image must be a Debian or Ubuntu marketplace label such as debian_bookworm or ubuntu_noble."
  }
}

variable "root_volume_size_gb" {
  description = "Size of each instance's root volume (Block Storage), in GB: OS, Docker images and containers."
  type        = number
  default     = 20

  validation {
    condition     = var.root_volume_size_gb >= 10 && var.root_volume_size_gb <= 1000
    error_message = "root_volume_size_gb must be between 10 and 1000."
  }
}

variable "data_volume_size_gb" {
  description = "Size of the Block Storage data volume attached to the instance that holds state (MLflow store if no managed database, Prometheus, Grafana), in GB."
  type        = number
  default     = 20

  validation {
    condition     = var.data_volume_size_gb >= 5 && var.data_volume_size_gb <= 10000
    error_message = "data_volume_size_gb must be between 5 and 10000."
  }
}

variable "data_volume_iops" {
  description = "Performance class of the data volume: 5000 or 15000 IOPS."
  type        = number
  default     = 5000

  validation {
    condition     = contains([5000, 15000], var.data_volume_iops)
    error_message = "data_volume_iops must be 5000 or 15000."
  }
}

# --- the stack ----------------------------------------------------------------------------------

variable "stack_ports" {
  description = "Ports the instances listen on, each of which reaches the deployment: `http`/`https`, the reverse proxy's (security group, load balancer backend, the proxy's published ports in compose's .env); `api`, the first private port of the model API replicas on service instances behind the load balancer (Prometheus on the control instance scrapes api, api+1, ...). The one home of these numbers: passed to Ansible through the inventory output. The services' own ports inside the containers are the images' (only the proxy is published)."
  type = object({
    http  = optional(number, 80)
    https = optional(number, 443)
    api   = optional(number, 3000)
  })
  default = {}

  validation {
    condition     = alltrue([for p in values(var.stack_ports) : p >= 1 && p <= 65535])
    error_message = "stack_ports: every port must be between 1 and 65535."
  }
  validation {
    condition     = length(distinct(values(var.stack_ports))) == length(values(var.stack_ports))
    error_message = "stack_ports: two services cannot share a port."
  }
}

variable "health_check_path" {
  description = "HTTP path the load balancer probes on each service instance's reverse proxy (which passes it to the model service's readiness endpoint)."
  type        = string
  default     = "/readyz"

  validation {
    condition     = startswith(var.health_check_path, "/")
    error_message = "health_check_path must start with /."
  }
}

variable "load_balancer_type" {
  description = "Scaleway Load Balancer offer, used when service_instance_count > 1."
  type        = string
  default     = "LB-S"

  validation {
    condition     = contains(["LB-S", "LB-GP-M", "LB-GP-L", "LB-GP-XL"], var.load_balancer_type)
    error_message = "load_balancer_type must be one of LB-S, LB-GP-M, LB-GP-L, LB-GP-XL."
  }
}

# --- data ---------------------------------------------------------------------------------------

variable "managed_database" {
  description = "Use a managed PostgreSQL (Scaleway Database, with automated backups) as MLflow's backend store instead of the stack's own PostgreSQL container on the data volume."
  type        = bool
  default     = false
}

variable "database_node_type" {
  description = "Node type of the managed PostgreSQL, when managed_database = true."
  type        = string
  default     = "DB-DEV-S"

  validation {
    condition     = can(regex("^DB-[A-Z0-9-]+$", upper(var.database_node_type)))
    error_message = "database_node_type must be a Scaleway database node type such as DB-DEV-S or DB-PLAY2-PICO."
  }
}

variable "database_engine" {
  description = "Engine version of the managed database."
  type        = string
  default     = "PostgreSQL-16"

  validation {
    condition     = can(regex("^PostgreSQL-[0-9]+$", var.database_engine))
    error_message = "database_engine must be a PostgreSQL engine such as PostgreSQL-16."
  }
}

variable "database_ha" {
  description = "Run the managed database as a high-availability cluster (two nodes, twice the price). MLflow is not on the request path, so off by default."
  type        = bool
  default     = false
}

variable "database_backup_retention_days" {
  description = "Days the managed database keeps its daily automated backups."
  type        = number
  default     = 7

  validation {
    condition     = var.database_backup_retention_days >= 1 && var.database_backup_retention_days <= 365
    error_message = "database_backup_retention_days must be between 1 and 365."
  }
}

variable "backup_retention_days" {
  description = "Days after which objects in the backups bucket expire (noncurrent versions expire after the same delay)."
  type        = number
  default     = 30

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 3650
    error_message = "backup_retention_days must be between 1 and 3650."
  }
}

variable "production_log_retention_days" {
  description = "Days after which the production log's files (predictions and feedback labels, docs/operations.md#the-production-log) expire from its bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.production_log_retention_days >= 1 && var.production_log_retention_days <= 3650
    error_message = "production_log_retention_days must be between 1 and 3650."
  }
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete non-empty buckets (every object and version). Keep false in prod."
  type        = bool
  default     = false
}
