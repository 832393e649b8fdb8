output "bucket" {
  description = "The Harbor image bucket."
  value       = minio_s3_bucket.harbor.bucket
}

output "endpoint" {
  description = "S3 endpoint the bucket lives at."
  value       = var.s3_endpoint
}

output "hubfleet_secrets" {
  description = "Merged by hubfleet into the member's encrypted secrets, by target. Nothing here: Hetzner keys are made in the console and saved by hand."
  sensitive   = true
  value = {
    values = {}
  }
}
