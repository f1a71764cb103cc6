"""Numba kernels: other."""
