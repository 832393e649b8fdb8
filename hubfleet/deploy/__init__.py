"""Deploying a member: validation, plan, diff, upgrade-or-install, rollout wait, health checks."""
