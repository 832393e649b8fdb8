locals {
  # The provider wants host[:port]; the registry holds a URL.
  s3_host = regex("^https://([^/]+)/?$", var.s3_endpoint)[0]
}

# Credentials: MINIO_USER / MINIO_PASSWORD in the environment only; they are
# the S3 keys of the Hetzner project (made in the Hetzner console).
provider "minio" {
  minio_server = local.s3_host
  minio_region = var.s3_region
  minio_ssl    = true
  # Hetzner does not implement bucket tagging.
  skip_bucket_tagging = true
}

resource "minio_s3_bucket" "harbor" {
  bucket         = var.bucket
  acl            = "private"
  force_destroy  = false
  object_locking = false
}

resource "minio_s3_bucket_versioning" "harbor" {
  bucket = minio_s3_bucket.harbor.bucket

  # Harbor deletes blobs itself (garbage collection); versions would only keep
  # paying for them.
  versioning_configuration {
    status = "Suspended"
  }
}

# Hetzner's keys are project-wide and cannot be narrowed per bucket, so the
# bucket policy carries only the deny: nobody may delete this bucket. No allow
# statement: with principal "*" it would make the bucket public. The policy
# does not deny policy changes, or the next apply could not update it.
module "policy" {
  source = "../modules/s3-bucket-policy"

  bucket              = minio_s3_bucket.harbor.bucket
  principal           = "*"
  grant_object_access = false
  deny_policy_changes = false
}

resource "minio_s3_bucket_policy" "harbor" {
  bucket = minio_s3_bucket.harbor.bucket
  policy = module.policy.policy_json
}
