"""Hosts over SSH: the SSH adapter, pinned host keys, host facts, the step runner and the steps every provider shares."""
