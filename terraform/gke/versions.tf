terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
  }

  # Configured by hubfleet at init: -backend-config=terraform/backend.hcl
  # -backend-config=key=hubfleet/<member>/gke.tfstate
  backend "s3" {}
}
