"""Conformance cases: quantization sparsity."""
