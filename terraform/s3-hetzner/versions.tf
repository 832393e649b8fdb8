terraform {
  required_version = ">= 1.6"

  required_providers {
    # Hetzner documents this provider for its S3-compatible object storage.
    minio = {
      source  = "aminueza/minio"
      version = "~> 3.39"
    }
  }

  # Configured by hubfleet at init: -backend-config=terraform/backend.hcl
  # -backend-config=key=hubfleet/<member>/s3.tfstate
  backend "s3" {}
}
