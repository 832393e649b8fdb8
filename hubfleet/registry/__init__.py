"""The member registry, config/federation.yaml: member records, its schema checks, and sizing from host facts."""
