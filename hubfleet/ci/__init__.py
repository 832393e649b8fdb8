"""Continuous deployment: which members a change deploys, as a GitHub Actions matrix, from git."""
