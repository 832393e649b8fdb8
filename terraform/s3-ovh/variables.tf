# Filled by hubfleet from the member registry.

variable "member" {
  description = "Member name (a DNS label); names the member's Public Cloud user."
  type        = string
}

variable "bucket" {
  description = "Name of the member's Harbor image bucket."
  type        = string
}

variable "s3_region" {
  description = "OVH object storage region, e.g. GRA, SBG, DE or EU-WEST-PAR; any case."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.s3_region))
    error_message = "s3_region must be an OVH region name such as GRA or EU-WEST-PAR."
  }
}

# Set per member in the registry (tofu: s3: ovh_project_id).

variable "ovh_project_id" {
  description = "ID (service_name) of the OVH Public Cloud project that holds the bucket."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.ovh_project_id))
    error_message = "ovh_project_id must be the 32 hexadecimal digits of a Public Cloud project ID."
  }
}
