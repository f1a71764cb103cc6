"""Numba kernels: losses."""
