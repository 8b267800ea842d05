"""Capture what served handlers use from a live namespace: code, objects, requirements, lineage."""
