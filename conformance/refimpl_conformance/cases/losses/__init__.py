"""Conformance cases: losses."""
