"""Composable sparse fine-tunings on CuPy: one fused add per SFT.

Mirrors ``refimpl/merging/sparse_ft.py``: ``θ = (…(θ₀ + φ_1) + …) + φ_S`` in the input dtype
and the reference's order; everything stays on the device.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def add(theta, phi):
        return theta + phi

    return SimpleNamespace(add=add)


kernels_for = kernel_set(_kernels)


def sparse_ft_compose_forward(theta0, phis):
    xp = xp_of(theta0)
    k = kernels_for(theta0)
    theta = theta0.copy()
    for s in range(phis.shape[-1]):
        theta = k.add(theta, phis[..., s])
    return xp.asarray(theta, dtype=theta0.dtype), None


IMPLS = {"sparse_ft_compose": Impl(sparse_ft_compose_forward)}
