output "projects" {
  description = "The Harbor projects of the member."
  value       = [harbor_project.builds.name, harbor_project.staging.name]
}

output "builder_robot" {
  description = "Robot account BinderHub pushes with."
  value       = harbor_robot_account.builder.full_name
}

output "puller_robot" {
  description = "Robot account of the user servers' image pull secret."
  value       = harbor_robot_account.puller.full_name
}

output "hubfleet_secrets" {
  description = "Merged by hubfleet into the member's encrypted secrets, by target: robot credentials go into the Helm values."
  sensitive   = true
  value = {
    values = {
      binderhub = {
        registry = {
          username = harbor_robot_account.builder.full_name
          password = harbor_robot_account.builder.secret
        }
      }
      jupyterhub = {
        imagePullSecret = {
          create   = true
          registry = var.registry_hostname
          username = harbor_robot_account.puller.full_name
          password = harbor_robot_account.puller.secret
        }
      }
    }
  }
}
