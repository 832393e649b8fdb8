"""Helm values: the layers of a member, merged with Helm's rules, with origins and masking of secret values."""
