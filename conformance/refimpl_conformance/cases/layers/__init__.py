"""Conformance cases: layers."""
