"""DR-Tune's distribution regularization on CuPy: cuBLAS products for the head, a fused kernel
for the cross-entropy's gradient.

Mirrors ``refimpl/regularizers/drtune.py``: the logits of the batch and of the calibrated
queue (``F Wᵀ + b``, two products stacked), the max-shifted log-softmax (the shared block),
the mean of the label entries; the backward is one fused kernel ``G = (L̄/M)(exp(log p) −
e_ŷ)`` and three products, ``Gᵀ F``, ``Σ_i G_i`` and ``G_{1..B} W``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, log_softmax

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def logit_grad(log_p, is_label, scale):
        return (xp.exp(log_p) - is_label) * scale

    return SimpleNamespace(logit_grad=logit_grad)


kernels_for = kernel_set(_kernels)


def drtune_distribution_regularization_forward(
    features, labels, calibrated, queue_labels, head_weight, head_bias
):
    xp = xp_of(features)
    dtype = features.dtype
    queue_features = calibrated.astype(dtype, copy=False)
    logits = xp.concatenate([features @ head_weight.T, queue_features @ head_weight.T]) + head_bias
    log_p = log_softmax(logits)
    all_labels = xp.concatenate([labels, queue_labels]).astype(xp.int64)[:, None]
    loss = (-xp.take_along_axis(log_p, all_labels, axis=1).mean()).astype(dtype)
    return loss, (features, queue_features, head_weight, log_p, all_labels)


def drtune_distribution_regularization_backward(residuals, g_loss):
    features, queue_features, head_weight, log_p, all_labels = residuals
    xp = xp_of(log_p)
    k = kernels_for(log_p)
    dtype = log_p.dtype
    batch = features.shape[0]
    is_label = (xp.arange(log_p.shape[1])[None, :] == all_labels).astype(dtype)
    scale = dtype.type(float(g_loss) / log_p.shape[0])
    g_logits = k.logit_grad(log_p, is_label, scale)  # G = (L̄/M)(p − e_ŷ)
    g_weight = g_logits[:batch].T @ features + g_logits[batch:].T @ queue_features  # Gᵀ F
    g_bias = g_logits.sum(axis=0)
    g_features = g_logits[:batch] @ head_weight
    return tuple(g.astype(dtype, copy=False) for g in (g_features, g_weight, g_bias))


IMPLS = {
    "drtune_distribution_regularization": Impl(
        drtune_distribution_regularization_forward, drtune_distribution_regularization_backward
    )
}
