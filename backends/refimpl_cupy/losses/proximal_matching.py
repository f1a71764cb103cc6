"""Proximal matching loss on CuPy: a fused squared difference, a row sum, a fused gradient.

Mirrors ``refimpl/losses/proximal_matching.py``: ``u = Σ(f − x)²`` (÷D with
``normalize_by_dim``), ``ℓ = −expm1(−u/γ²)``; the backward is ``f̄ = w·exp(−u/γ²)·2/(nγ²)·(f − x)``
in one fused kernel (f and x kept, no (B, D) residuals formed).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def squared_difference(f, x):
        difference = f - x
        return difference * difference

    @fuse
    def loss_and_slope(u, inverse_gamma2, slope_factor):
        q = u * inverse_gamma2
        return -xp.expm1(-q), xp.exp(-q) * slope_factor

    @fuse
    def gradient(f, x, factor):
        return factor * (f - x)

    return SimpleNamespace(
        squared_difference=squared_difference, loss_and_slope=loss_and_slope, gradient=gradient
    )


kernels_for = kernel_set(_kernels)


def proximal_matching_loss_forward(f, x, *, gamma, normalize_by_dim=False, reduction="mean"):
    k = kernels_for(f)
    dtype = f.dtype.type
    scale = f.shape[-1] if normalize_by_dim else 1
    u = k.squared_difference(f, x).sum(axis=-1) / dtype(scale)
    inverse_gamma2 = dtype(1.0 / (gamma * gamma))
    per_row, slope = k.loss_and_slope(u, inverse_gamma2, dtype(2.0 / (scale * gamma * gamma)))
    return reduce_rows(per_row, reduction, f.dtype), (f, x, slope, reduction)


def proximal_matching_loss_backward(residuals, g_loss):
    f, x, slope, reduction = residuals
    w = row_weights(g_loss.astype(f.dtype), reduction, f.shape[0])
    g_f = kernels_for(f).gradient(f, x, (w * slope)[:, None])
    return (xp_of(f).asarray(g_f, dtype=f.dtype),)


IMPLS = {"proximal_matching_loss": Impl(proximal_matching_loss_forward, proximal_matching_loss_backward)}
