"""Conformance cases: optim."""
