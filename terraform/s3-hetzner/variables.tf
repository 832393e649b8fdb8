# Filled by hubfleet from the member registry.

variable "bucket" {
  description = "Name of the member's Harbor image bucket."
  type        = string
}

variable "s3_endpoint" {
  description = "HTTPS URL of the Hetzner object storage location, e.g. https://fsn1.your-objectstorage.com."
  type        = string

  validation {
    condition     = can(regex("^https://[^/]+/?$", var.s3_endpoint))
    error_message = "s3_endpoint must be an https:// URL with a host and no path."
  }
}

variable "s3_region" {
  description = "Hetzner object storage location, e.g. fsn1, nbg1, hel1. Requests are signed for this region."
  type        = string
}
