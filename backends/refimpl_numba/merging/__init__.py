"""Numba kernels: merging."""
