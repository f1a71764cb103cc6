"""Conformance cases: reweighting."""
