"""Packaged configuration files (YAML/JSON)."""
