"""Nested dropout on CuPy: one fused multiply by the 0/1 prefix mask.

Mirrors ``refimpl/layers/nested_dropout.py``: ``h̃ = h ⊙ mask`` and ``h̄ = mask ⊙ h̃̄`` with
``mask_j = [j < k]``. ``nested_dropout_prefix_probs`` (a one-off construction) stays
reference-only.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def keep_prefix(h, index, k):
        return h * (index < k)  # float × bool keeps the float dtype

    return SimpleNamespace(keep_prefix=keep_prefix)


kernels_for = kernel_set(_kernels)


def nested_dropout_forward(h, *, k):
    index = xp_of(h).arange(h.shape[-1])
    return kernels_for(h).keep_prefix(h, index, int(k)), (index, int(k))


def nested_dropout_backward(residuals, g_h_masked):
    index, k = residuals
    return (kernels_for(g_h_masked).keep_prefix(g_h_masked, index, k),)


IMPLS = {"nested_dropout": Impl(nested_dropout_forward, nested_dropout_backward)}
