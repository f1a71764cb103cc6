"""Numba kernels: optim."""
