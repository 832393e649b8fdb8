"""The deploy repository on disk: finding it, reading its YAML with line numbers, writing its files atomically."""
