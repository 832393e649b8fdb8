variable "bucket" {
  description = "Name of the bucket the policy gives object access to."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "The bucket must be a valid S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens."
  }
}

variable "principal" {
  description = "AWS-style principal written into every statement, for a bucket policy (\"*\" = everyone). null leaves Principal out: the form of a policy attached to a user."
  type        = string
  default     = null
}

variable "grant_object_access" {
  description = "Include the statement that allows object read/write and multipart uploads on the bucket. Leave it out for a bucket policy whose principal is \"*\": there it would make the bucket public."
  type        = bool
  default     = true
}

variable "deny_policy_changes" {
  description = "Also deny s3:PutBucketPolicy and s3:DeleteBucketPolicy. Turn off where the same credentials must later update this very policy (a bucket policy applied with the project's own keys)."
  type        = bool
  default     = true
}
