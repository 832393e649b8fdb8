"""The one error type hubfleet raises for problems an operator can fix.

Every message is a single line that names the member, host or file at fault and, where it
helps, what to do next. Tasks print the message and exit 1; tracebacks only with --debug.
"""

from __future__ import annotations


class HubfleetError(Exception):
    """A user-facing failure: one line, names what is at fault."""


class ConfigError(HubfleetError):
    """A file in the deploy repo is malformed or violates its schema."""


class UnknownMemberError(HubfleetError):
    """A member name that is not in the registry."""


class SecretsError(HubfleetError):
    """A secrets file cannot be read, decrypted or written safely."""


class ClusterError(HubfleetError):
    """A member's cluster cannot be reached or refused an operation."""


class RenderError(HubfleetError):
    """A chart failed to load, lint or render."""


class RolloutError(HubfleetError):
    """A release was applied but its workloads did not become ready."""


class LaterChangeFailed(HubfleetError):
    """A change a host step left to go with the host's next command failed there; `step` names
    the step it belongs to (hubfleet.hosts.steps reports it against that step)."""

    def __init__(self, message: str, step: str):
        super().__init__(message)
        self.step = step
