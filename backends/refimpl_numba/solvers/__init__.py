"""Numba kernels: solvers."""
