output "bucket" {
  description = "The Harbor image bucket."
  value       = ovh_cloud_project_storage.harbor.name
}

output "bucket_host" {
  description = "Virtual host of the bucket, as OVH reports it."
  value       = ovh_cloud_project_storage.harbor.virtual_host
}

output "s3_user" {
  description = "The Public Cloud user whose S3 keys Harbor uses."
  value       = ovh_cloud_project_user.harbor.username
}

output "hubfleet_secrets" {
  description = "Merged by hubfleet into the member's encrypted secrets, by target: the S3 keys go into Harbor's Helm values."
  sensitive   = true
  value = {
    values = {
      harbor = {
        persistence = {
          imageChartStorage = {
            s3 = {
              accesskey = ovh_cloud_project_user_s3_credential.harbor.access_key_id
              secretkey = ovh_cloud_project_user_s3_credential.harbor.secret_access_key
            }
          }
        }
      }
    }
  }
}
