# Filled by hubfleet from the member registry.

variable "member" {
  description = "Member name (a DNS label); names the robot accounts and the replication."
  type        = string
}

variable "registry_hostname" {
  description = "Host name of the member's Harbor, registry.<domain>; written into the image pull secret."
  type        = string
}

# Defaults; override per member in the registry under tofu: harbor: <variable>.

variable "builds_quota_gb" {
  description = "Storage quota of the builds project, in GB (-1 = unlimited)."
  type        = number
  default     = 500
}

variable "staging_quota_gb" {
  description = "Storage quota of the staging project, in GB (-1 = unlimited)."
  type        = number
  default     = 100
}

variable "builds_retention_days" {
  description = "Keep an image in builds while it was pulled or pushed within this many days."
  type        = number
  default     = 30

  validation {
    condition     = var.builds_retention_days >= 1
    error_message = "builds_retention_days must be at least 1."
  }
}

variable "staging_retention_days" {
  description = "Keep an image in staging while it was pulled or pushed within this many days."
  type        = number
  default     = 7

  validation {
    condition     = var.staging_retention_days >= 1
    error_message = "staging_retention_days must be at least 1."
  }
}

variable "retention_schedule" {
  description = "When Harbor runs the retention policies: Hourly, Daily, Weekly or a six-field cron string (seconds first)."
  type        = string
  default     = "Daily"
}

variable "gc_schedule" {
  description = "When Harbor garbage-collects blobs: Hourly, Daily, Weekly or a six-field cron string (seconds first). Default: Saturdays 03:00."
  type        = string
  default     = "0 0 3 * * 6"
}

variable "gc_delete_untagged" {
  description = "Let garbage collection delete untagged artifacts."
  type        = bool
  default     = true
}

variable "replication_url" {
  description = "URL of a registry to push the builds project to; \"\" = no replication."
  type        = string
  default     = ""

  validation {
    condition     = var.replication_url == "" || can(regex("^https?://", var.replication_url))
    error_message = "replication_url must be \"\" or an http(s):// URL."
  }
}

variable "replication_registry_type" {
  description = "Harbor provider name of the replication target, e.g. harbor, docker-registry, docker-hub."
  type        = string
  default     = "harbor"
}

variable "replication_schedule" {
  description = "When to push builds to the replication target: a six-field cron string (seconds first), event_based or manual."
  type        = string
  default     = "0 0 4 * * *"
}

# Secrets: never in the registry. Give them to the tofu run in its environment,
# as TF_VAR_replication_username / TF_VAR_replication_password.

variable "replication_username" {
  description = "User name on the replication target; \"\" = anonymous."
  type        = string
  default     = ""
  sensitive   = true
}

variable "replication_password" {
  description = "Password or token on the replication target."
  type        = string
  default     = ""
  sensitive   = true
}
