terraform {
  # Terraform built-ins only: no provider, so the policy can be rendered and
  # checked offline.
  required_version = ">= 1.6"
}
