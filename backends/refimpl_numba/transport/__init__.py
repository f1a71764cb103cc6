"""Numba kernels: transport."""
