"""Feat-Mix on CuPy: the keep mask and label weight, then MixUp's fused row mix.

Mirrors ``refimpl/regularizers/feat_mix.py``: ``m = 1[u > λ]``, ``Λ = m I`` (a matrix-vector
product), ``x̃ = m ⊙ x + (1 − m) ⊙ x[π]``; the backward is MixUp's scatter-add with m as the
weight.
"""

from __future__ import annotations

from refimpl.authoring import Impl

from .mixup import mix_rows, mix_rows_backward


def feat_mix_forward(x, perm, lam, u, importances):
    keep = (u > lam[:, None]).astype(x.dtype)
    label_weight = keep @ importances.astype(x.dtype)
    return (mix_rows(x, keep, perm), label_weight.astype(x.dtype)), (keep, perm)


def feat_mix_backward(residuals, cotangents):
    keep, perm = residuals
    return (mix_rows_backward(keep, perm, cotangents[0].astype(keep.dtype)),)


IMPLS = {"feat_mix": Impl(feat_mix_forward, feat_mix_backward)}
