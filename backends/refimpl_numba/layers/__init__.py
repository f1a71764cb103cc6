"""Numba kernels: layers."""
