"""Numba kernels: reweighting."""
