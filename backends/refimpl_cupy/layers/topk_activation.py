"""Top-k activation thresholding on CuPy.

Mirrors ``refimpl/layers/topk_activation.py``: ``t_k`` per row by ``partition``, the tie
rule by a running count of the entries equal to ``t_k`` (lowest indices first), then one
fused kernel applies the mask forward and backward. ``activation_sparsity`` is a statistic:
reference only.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def masked(values, mask):
        return xp.where(mask, values, 0).astype(values.dtype)

    @fuse
    def exactly_k_mask(h, kth, running_ties, places_left):
        return (h > kth) | ((h == kth) & (running_ties <= places_left))

    return SimpleNamespace(masked=masked, exactly_k_mask=exactly_k_mask)


kernels_for = kernel_set(_kernels)


def topk_activation_forward(h, *, k, tie_rule="exactly_k"):
    xp = xp_of(h)
    kernels = kernels_for(h)
    d = h.shape[-1]
    kth = xp.partition(h, d - k, axis=-1)[..., d - k : d - k + 1]
    if tie_rule == "threshold":
        mask = h >= kth
    else:
        places_left = k - (h > kth).sum(axis=-1, keepdims=True)
        mask = kernels.exactly_k_mask(h, kth, xp.cumsum(h == kth, axis=-1), places_left)
    return kernels.masked(h, mask), mask


def topk_activation_backward(mask, g_h_topk):
    return (kernels_for(g_h_topk).masked(g_h_topk, mask),)


IMPLS = {"topk_activation": Impl(topk_activation_forward, topk_activation_backward)}
