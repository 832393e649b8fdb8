# Credentials: GOOGLE_CREDENTIALS in the environment only.
provider "google" {
  project = var.gke_project
}

locals {
  labels       = { hubfleet-member = var.member }
  oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]
}

resource "google_container_cluster" "main" {
  name     = var.gke_cluster
  location = var.gke_location

  # Node pools are managed below; the default pool is created and dropped.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = true

  resource_labels = local.labels

  release_channel {
    channel = var.kubernetes_release_channel
  }

  dynamic "workload_identity_config" {
    for_each = var.workload_identity ? [var.gke_project] : []
    content {
      workload_pool = "${workload_identity_config.value}.svc.id.goog"
    }
  }
}

resource "google_container_node_pool" "core" {
  name       = "core"
  cluster    = google_container_cluster.main.name
  location   = var.gke_location
  node_count = var.core_node_count

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.core_machine_type
    labels          = { "hub.jupyter.org/node-purpose" = "core" }
    resource_labels = local.labels
    oauth_scopes    = local.oauth_scopes
  }
}

# User servers: GPU nodes, time-shared, tainted so only user pods land there
# (z2jh's user pods tolerate hub.jupyter.org_dedicated=user).
resource "google_container_node_pool" "user" {
  name     = "user-gpu"
  cluster  = google_container_cluster.main.name
  location = var.gke_location

  autoscaling {
    min_node_count = var.gpu_min_nodes
    max_node_count = var.gpu_max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.user_machine_type
    spot            = var.spot
    disk_size_gb    = var.user_disk_size_gb
    labels          = { "hub.jupyter.org/node-purpose" = "user" }
    resource_labels = local.labels
    oauth_scopes    = local.oauth_scopes

    taint {
      key    = "hub.jupyter.org_dedicated"
      value  = "user"
      effect = "NO_SCHEDULE"
    }

    guest_accelerator {
      type  = var.gpu_type
      count = var.gpus_per_node

      gpu_sharing_config {
        gpu_sharing_strategy       = "TIME_SHARING"
        max_shared_clients_per_gpu = var.gpu_max_shared_clients
      }

      gpu_driver_installation_config {
        gpu_driver_version = var.gpu_driver_version
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.gpu_min_nodes <= var.gpu_max_nodes
      error_message = "gpu_min_nodes must not exceed gpu_max_nodes."
    }
  }
}
