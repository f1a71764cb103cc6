"""Numba kernels: data_selection."""
