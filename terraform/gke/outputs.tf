output "cluster" {
  description = "Name of the GKE cluster."
  value       = google_container_cluster.main.name
}

output "endpoint" {
  description = "IP address of the cluster's API server."
  value       = google_container_cluster.main.endpoint
}

output "hubfleet_secrets" {
  description = "Merged by hubfleet into the member's encrypted secrets, by target: the API endpoint and CA go into the member's GKE credentials file."
  sensitive   = true
  value = {
    gke = {
      endpoint       = google_container_cluster.main.endpoint
      ca_certificate = google_container_cluster.main.master_auth[0].cluster_ca_certificate
    }
  }
}
