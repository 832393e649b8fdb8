"""Host addresses as other programs want them written."""

from __future__ import annotations


def address_with_port(address: str, port: int) -> str:
    """host:port, with an IPv6 address in brackets."""
    if ":" in address and not address.startswith("["):
        return f"[{address}]:{port}"
    return f"{address}:{port}"
