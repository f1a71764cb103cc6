"""CETT on CuPy: fused norm-and-mask kernel, two float64 products.

Mirrors ``refimpl/quantization_sparsity/sparsing_law.py``: the contribution norms
``|h_i|·‖w_i‖`` and the pruning mask in one fused kernel, the dense output and the pruned
part as float64 matrix products, their row norms, and CETT = 0 where ‖y‖ = 0. The threshold
search and the PPL-p% bisection stay reference-only.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def masked(h, column_norms, epsilon):
        norm = abs(h) * column_norms
        return norm < epsilon, norm

    @fuse
    def ratio(norm_partial_squared, norm_y_squared):
        positive = norm_y_squared > 0
        return xp.where(
            positive, xp.sqrt(norm_partial_squared) / xp.sqrt(xp.where(positive, norm_y_squared, 1.0)), 0.0
        )

    return SimpleNamespace(masked=masked, ratio=ratio)


kernels_for = kernel_set(_kernels)


def cett_forward(h, w_down, *, epsilon, inclusive=False):
    xp = xp_of(h)
    k = kernels_for(h)
    h64 = h.astype(xp.float64)
    w64 = w_down.astype(xp.float64)
    column_norms = xp.sqrt((w64 * w64).sum(axis=0))
    strict, norms = k.masked(h64, column_norms[None, :], float(epsilon))
    pruned = (norms <= epsilon) if inclusive else strict
    y = h64 @ w64.T
    partial = xp.where(pruned, h64, 0.0) @ w64.T
    values = k.ratio((partial * partial).sum(axis=1), (y * y).sum(axis=1))
    sparsity = pruned.mean(axis=1)
    return (values.astype(h.dtype), sparsity.astype(h.dtype)), None


IMPLS = {"cett": Impl(cett_forward)}
