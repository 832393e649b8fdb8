terraform {
  required_version = ">= 1.6"

  required_providers {
    ovh = {
      source  = "ovh/ovh"
      version = "~> 2.0"
    }
  }

  # Configured by hubfleet at init: -backend-config=terraform/backend.hcl
  # -backend-config=key=hubfleet/<member>/s3.tfstate
  backend "s3" {}
}
