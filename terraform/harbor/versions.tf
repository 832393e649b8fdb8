terraform {
  required_version = ">= 1.6"

  required_providers {
    harbor = {
      source  = "goharbor/harbor"
      version = "~> 3.10"
    }
  }

  # Configured by hubfleet at init: -backend-config=terraform/backend.hcl
  # -backend-config=key=hubfleet/<member>/harbor.tfstate
  backend "s3" {}
}
