"""Conformance cases: structure learning."""
