# Credentials: OVH_ENDPOINT, OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and
# OVH_CONSUMER_KEY in the environment only.
provider "ovh" {}

# A user of its own per member, so its S3 keys reach this bucket only.
resource "ovh_cloud_project_user" "harbor" {
  service_name = var.ovh_project_id
  description  = "hubfleet ${var.member}: Harbor image storage"
  role_names   = ["objectstore_operator"]
}

resource "ovh_cloud_project_user_s3_credential" "harbor" {
  service_name = var.ovh_project_id
  user_id      = ovh_cloud_project_user.harbor.id
}

resource "ovh_cloud_project_storage" "harbor" {
  service_name = var.ovh_project_id
  region_name  = upper(var.s3_region)
  name         = var.bucket
}

# Attached to the user (no Principal): object access on this bucket only, and
# no creating or deleting buckets nor changing bucket policies.
module "policy" {
  source = "../modules/s3-bucket-policy"

  bucket = ovh_cloud_project_storage.harbor.name
}

resource "ovh_cloud_project_user_s3_policy" "harbor" {
  service_name = var.ovh_project_id
  user_id      = ovh_cloud_project_user.harbor.id
  policy       = module.policy.policy_json
}
