"""Outside services: S3 buckets and lifecycles, GKE credentials, DNS checks, OpenTofu stacks, Harbor's secrets."""
