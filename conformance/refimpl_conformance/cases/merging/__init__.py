"""Conformance cases: merging."""
