"""Numba kernels: structure learning."""
