"""Stored objects: migrations applied while parsing, the bulk rewrite, configuration deltas."""
