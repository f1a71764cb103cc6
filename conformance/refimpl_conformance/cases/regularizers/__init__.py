"""Conformance cases: regularizers."""
