"""Conformance cases: data_selection."""
