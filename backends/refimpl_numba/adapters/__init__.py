"""Numba kernels: adapters."""
