# Filled by hubfleet from the member registry.

variable "member" {
  description = "Member name (a DNS label); labels the cluster and its nodes."
  type        = string
}

variable "gke_project" {
  description = "Google Cloud project ID that holds the cluster."
  type        = string
}

variable "gke_location" {
  description = "Zone (zonal cluster) or region (regional cluster) of the cluster."
  type        = string
}

variable "gke_cluster" {
  description = "Name of the GKE cluster."
  type        = string
}

# Defaults; override per member in the registry under tofu: gke: <variable>.

variable "kubernetes_release_channel" {
  description = "GKE release channel the cluster follows."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE", "EXTENDED"], var.kubernetes_release_channel)
    error_message = "kubernetes_release_channel must be RAPID, REGULAR, STABLE or EXTENDED."
  }
}

variable "workload_identity" {
  description = "Enable Workload Identity (pool <project>.svc.id.goog) on the cluster."
  type        = bool
  default     = false
}

variable "core_machine_type" {
  description = "Machine type of the core pool (hub, proxy, BinderHub, Harbor clients)."
  type        = string
  default     = "e2-standard-4"
}

variable "core_node_count" {
  description = "Number of core nodes (per zone, for a regional cluster)."
  type        = number
  default     = 1

  validation {
    condition     = var.core_node_count >= 1
    error_message = "core_node_count must be at least 1."
  }
}

variable "user_machine_type" {
  description = "Machine type of the GPU user pool; must accept the chosen GPU (T4 attaches to N1)."
  type        = string
  default     = "n1-standard-8"
}

variable "user_disk_size_gb" {
  description = "Boot disk size of a user node, in GB (images are cached there)."
  type        = number
  default     = 100

  validation {
    condition     = var.user_disk_size_gb >= 10
    error_message = "user_disk_size_gb must be at least 10."
  }
}

variable "spot" {
  description = "Run user nodes as Spot VMs (cheaper, may be reclaimed at any time)."
  type        = bool
  default     = true
}

variable "gpu_type" {
  description = "Accelerator type of the user nodes."
  type        = string
  default     = "nvidia-tesla-t4"
}

variable "gpus_per_node" {
  description = "GPUs attached to each user node."
  type        = number
  default     = 1

  validation {
    condition     = var.gpus_per_node >= 1
    error_message = "gpus_per_node must be at least 1."
  }
}

variable "gpu_min_nodes" {
  description = "Autoscaler minimum of the user pool (per zone); 0 lets it scale to zero."
  type        = number
  default     = 0

  validation {
    condition     = var.gpu_min_nodes >= 0
    error_message = "gpu_min_nodes must not be negative."
  }
}

variable "gpu_max_nodes" {
  description = "Autoscaler maximum of the user pool (per zone)."
  type        = number
  default     = 4

  validation {
    condition     = var.gpu_max_nodes >= 1
    error_message = "gpu_max_nodes must be at least 1."
  }
}

variable "gpu_max_shared_clients" {
  description = "Containers that time-share one GPU."
  type        = number
  default     = 4

  validation {
    condition     = var.gpu_max_shared_clients >= 2 && var.gpu_max_shared_clients <= 48
    error_message = "gpu_max_shared_clients must be between 2 and 48."
  }
}

variable "gpu_driver_version" {
  description = "NVIDIA driver GKE installs: DEFAULT, LATEST or INSTALLATION_DISABLED (install it yourself)."
  type        = string
  default     = "DEFAULT"

  validation {
    condition     = contains(["DEFAULT", "LATEST", "INSTALLATION_DISABLED"], var.gpu_driver_version)
    error_message = "gpu_driver_version must be DEFAULT, LATEST or INSTALLATION_DISABLED."
  }
}
