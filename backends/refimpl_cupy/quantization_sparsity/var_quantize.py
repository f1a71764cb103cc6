"""VAR multi-scale VQ loss on CuPy: one fused squared-difference reduction, one fused backward.

Mirrors ``refimpl/quantization_sparsity/var_quantize.py``: the value
``(1 + β)/(Kn) Σ_k ‖f̂_k − f‖²`` (float64 sum) and the stop-gradient backward
``f̂̄_k = s(f̂_k − f)``, ``f̄ = −βs Σ_k (f̂_k − f)`` with s = 2L̄/(Kn).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def squared_difference(f_hat, f):
        difference = f_hat.astype(xp.float64) - f.astype(xp.float64)
        return difference * difference

    @fuse
    def scaled_difference(f_hat, f, scale):
        return (scale * (f_hat.astype(xp.float64) - f.astype(xp.float64))).astype(f.dtype)

    return SimpleNamespace(squared_difference=squared_difference, scaled_difference=scaled_difference)


kernels_for = kernel_set(_kernels)


def multiscale_vq_loss_forward(f, f_hats, *, beta=0.25):
    xp = xp_of(f)
    squares = kernels_for(f).squared_difference(f_hats, f[None]).sum()
    loss = (1.0 + beta) / (f_hats.shape[0] * f.size) * squares
    return xp.asarray(loss, dtype=f.dtype), (f, f_hats, beta)


def multiscale_vq_loss_backward(residuals, g_loss):
    f, f_hats, beta = residuals
    xp = xp_of(f)
    scale = 2.0 * float(g_loss) / f_hats.size
    g_f_hats = kernels_for(f).scaled_difference(f_hats, f[None], scale)
    total = (f_hats.astype(xp.float64) - f[None].astype(xp.float64)).sum(axis=0)
    g_f = (-beta * scale * total).astype(f.dtype)
    return g_f, g_f_hats


IMPLS = {"multiscale_vq_loss": Impl(multiscale_vq_loss_forward, multiscale_vq_loss_backward)}
