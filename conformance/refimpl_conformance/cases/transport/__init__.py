"""Conformance cases: transport."""
