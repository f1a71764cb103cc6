"""Numba kernels: quantization sparsity."""
