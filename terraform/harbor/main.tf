# Credentials: HARBOR_URL, HARBOR_USERNAME and HARBOR_PASSWORD in the
# environment only. Each member has its own Harbor, so the project names are
# the same on every member.
provider "harbor" {}

resource "harbor_project" "builds" {
  name          = "builds"
  public        = false
  storage_quota = var.builds_quota_gb
}

resource "harbor_project" "staging" {
  name          = "staging"
  public        = false
  storage_quota = var.staging_quota_gb
}

# BinderHub pushes the images it builds, and pulls them to check they exist.
resource "harbor_robot_account" "builder" {
  name        = "${var.member}-builder"
  description = "hubfleet ${var.member}: BinderHub pushes built images"
  level       = "project"

  permissions {
    kind      = "project"
    namespace = harbor_project.builds.name

    access {
      action   = "push"
      resource = "repository"
    }

    access {
      action   = "pull"
      resource = "repository"
    }
  }
}

# The user servers' image pull secret.
resource "harbor_robot_account" "puller" {
  name        = "${var.member}-puller"
  description = "hubfleet ${var.member}: user servers pull built images"
  level       = "project"

  permissions {
    kind      = "project"
    namespace = harbor_project.builds.name

    access {
      action   = "pull"
      resource = "repository"
    }
  }
}

# Keep an image while it was pulled OR pushed recently (rules are OR-ed).
resource "harbor_retention_policy" "builds" {
  scope    = harbor_project.builds.id
  schedule = var.retention_schedule

  rule {
    n_days_since_last_pull = var.builds_retention_days
    repo_matching          = "**"
    tag_matching           = "**"
  }

  rule {
    n_days_since_last_push = var.builds_retention_days
    repo_matching          = "**"
    tag_matching           = "**"
  }
}

resource "harbor_retention_policy" "staging" {
  scope    = harbor_project.staging.id
  schedule = var.retention_schedule

  rule {
    n_days_since_last_pull = var.staging_retention_days
    repo_matching          = "**"
    tag_matching           = "**"
  }

  rule {
    n_days_since_last_push = var.staging_retention_days
    repo_matching          = "**"
    tag_matching           = "**"
  }
}

# Retention only untags and deletes manifests; the blobs go at GC.
resource "harbor_garbage_collection" "main" {
  schedule        = var.gc_schedule
  delete_untagged = var.gc_delete_untagged
}

resource "harbor_registry" "replica" {
  count = var.replication_url == "" ? 0 : 1

  provider_name = var.replication_registry_type
  name          = "${var.member}-replica"
  endpoint_url  = var.replication_url
  access_id     = var.replication_username == "" ? null : var.replication_username
  access_key    = var.replication_password == "" ? null : var.replication_password
}

resource "harbor_replication" "builds" {
  count = length(harbor_registry.replica)

  name        = "${var.member}-builds"
  description = "hubfleet ${var.member}: push the builds project"
  action      = "push"
  registry_id = harbor_registry.replica[0].registry_id
  schedule    = var.replication_schedule

  filters {
    name = "${harbor_project.builds.name}/**"
  }
}
