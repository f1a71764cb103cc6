"""Conformance cases: adapters."""
