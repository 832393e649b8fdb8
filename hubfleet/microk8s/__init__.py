"""MicroK8s members: snap, addons, joins, MetalLB, WireGuard across sites, GPU checks."""
