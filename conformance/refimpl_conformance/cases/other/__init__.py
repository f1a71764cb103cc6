"""Conformance cases: other."""
