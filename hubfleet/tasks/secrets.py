"""secrets.* tasks (placeholder until the sops adapter lands)."""
