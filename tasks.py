"""invoke entry point: the task namespace comes from hubfleet.tasks, nothing else lives here."""

from hubfleet.tasks import build_namespace

ns = build_namespace()
