output "policy_json" {
  description = "The policy document, JSON-encoded."
  value = jsonencode({
    Version   = "2012-10-17"
    Statement = local.policy_statements
  })

  precondition {
    condition     = !(var.grant_object_access && var.principal == "*")
    error_message = "Allowing object access to principal \"*\" would make the bucket public; set grant_object_access = false or name a principal."
  }
}
