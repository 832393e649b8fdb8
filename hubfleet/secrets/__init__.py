"""Secrets: the sops adapter (decrypt in memory, encrypt, edit) and fresh random secrets."""
