"""PINTO's counterfactual regularization on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/losses/pinto.py``: ``CE = log Σ exp(s − m) − (s_y − m)`` and
``C̃E = log Σ exp(s̃ − m̃) − (1 − ε)(s̃_ỹ − m̃) − (ε/K) Σ_k (s̃_k − m̃)``; the backward's fused
kernels recompute the softmaxes from the row max and sum: ``s̄ = w (p − Y)``,
``s̃̄ = w λ (q − t)``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def shifted_exp(z, m):
        return xp.exp(z - m)  # subtract the row max: exp cannot overflow

    @fuse
    def softmax_minus_target(z, m, inverse_total, target, w):
        # p = exp(z − m)/Σ (not exp(z − lse): m + log Σ rounds to the ulp of m in float32)
        return w * (xp.exp(z - m) * inverse_total - target)

    return SimpleNamespace(shifted_exp=shifted_exp, softmax_minus_target=softmax_minus_target)


kernels_for = kernel_set(_kernels)


def _max_and_total(k, z):
    m = z.max(axis=-1, keepdims=True)
    return m, k.shifted_exp(z, m).sum(axis=-1, keepdims=True)


def pinto_counterfactual_loss_forward(
    s,
    s_perturbed,
    y,
    y_perturbed=None,
    *,
    counter_factor=1.0,
    counterfactual_target="label_smoothing",
    smoothing=0.1,
    reduction="mean",
):
    xp = xp_of(s)
    k = kernels_for(s)
    dtype = s.dtype.type
    num_choices = s.shape[1]
    labels = y.astype(xp.int64)[:, None]
    labels_perturbed = labels if y_perturbed is None else y_perturbed.astype(xp.int64)[:, None]
    epsilon = 1.0 if counterfactual_target == "uniform" else float(smoothing)
    m, total = _max_and_total(k, s)
    m_perturbed, total_perturbed = _max_and_total(k, s_perturbed)
    cross_entropy = xp.log(total) - (xp.take_along_axis(s, labels, axis=1) - m)
    shifted_perturbed = s_perturbed - m_perturbed
    counterfactual = (
        xp.log(total_perturbed)
        - dtype(1 - epsilon) * xp.take_along_axis(shifted_perturbed, labels_perturbed, axis=1)
        - dtype(epsilon / num_choices) * shifted_perturbed.sum(axis=-1, keepdims=True)
    )
    per_row = (cross_entropy + dtype(counter_factor) * counterfactual)[:, 0]
    residuals = (
        s,
        s_perturbed,
        labels,
        labels_perturbed,
        epsilon,
        counter_factor,
        m,
        1 / total,
        m_perturbed,
        1 / total_perturbed,
        reduction,
    )
    return reduce_rows(per_row, reduction, s.dtype), residuals


def pinto_counterfactual_loss_backward(residuals, g_loss):
    (
        s,
        s_perturbed,
        labels,
        labels_perturbed,
        epsilon,
        counter_factor,
        m,
        inverse_total,
        m_perturbed,
        inverse_total_perturbed,
        reduction,
    ) = residuals
    xp = xp_of(s)
    k = kernels_for(s)
    dtype = s.dtype
    num_choices = s.shape[1]
    w = row_weights(g_loss.astype(dtype), reduction, s.shape[0])[:, None]
    choices = xp.arange(num_choices)[None, :]
    one_hot = (choices == labels).astype(dtype)
    target = (
        dtype.type(1 - epsilon) * (choices == labels_perturbed) + dtype.type(epsilon / num_choices)
    ).astype(dtype)
    g_s = k.softmax_minus_target(s, m, inverse_total, one_hot, w)
    g_s_perturbed = k.softmax_minus_target(
        s_perturbed, m_perturbed, inverse_total_perturbed, target, w * dtype.type(counter_factor)
    )
    return g_s.astype(dtype), g_s_perturbed.astype(dtype)


IMPLS = {
    "pinto_counterfactual_loss": Impl(pinto_counterfactual_loss_forward, pinto_counterfactual_loss_backward)
}
