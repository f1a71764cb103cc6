"""Numba kernels: regularizers."""
