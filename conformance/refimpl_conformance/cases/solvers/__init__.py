"""Conformance cases: solvers."""
