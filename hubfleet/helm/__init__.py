"""Helm: the engine interface, the embedded SDK and the helm CLI engines, chart dependencies, Helm's errors in one line."""
