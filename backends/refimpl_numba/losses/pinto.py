"""PINTO's counterfactual regularization: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/pinto.py``. One pass per row and per score matrix gives the max and
the log-normalizer: ``CE = LSE(s) − s_y`` and ``C̃E = LSE(s̃) − (1 − ε) s̃_ỹ − (ε/K) Σ_k s̃_k``;
the backward recomputes both softmaxes from the saved log-sum-exps: ``s̄ = w (p − Y)``,
``s̃̄ = w λ (q − t)``. Row scalars are float64; ``exp`` is the vectorizable one of ``_vmath``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import row_log_sum_exp, vexp


@parallel_kernel(fastmath={"reassoc"})
def _pinto_rows(s, s_perturbed, y, y_perturbed, epsilon, factor, per_row, lse, lse_perturbed):
    num_choices = s.shape[1]
    for i in prange(s.shape[0]):
        m, log_total = row_log_sum_exp(s, i)
        m_perturbed, log_total_perturbed = row_log_sum_exp(s_perturbed, i)
        total = 0.0
        for k in range(num_choices):
            total += np.float64(s_perturbed[i, k])
        lse[i] = m + log_total
        lse_perturbed[i] = m_perturbed + log_total_perturbed
        cross_entropy = lse[i] - np.float64(s[i, y[i]])
        # −Σ_k t_k log q_k, t = (1 − ε) Ỹ + ε/K, formed on the max-shifted scores
        counterfactual = (
            log_total_perturbed
            - (1.0 - epsilon) * (np.float64(s_perturbed[i, y_perturbed[i]]) - m_perturbed)
            - epsilon * (total / num_choices - m_perturbed)
        )
        per_row[i] = cross_entropy + factor * counterfactual


@parallel_kernel(fastmath={"reassoc"})
def _pinto_backward_rows(
    s, s_perturbed, y, y_perturbed, epsilon, factor, lse, lse_perturbed, weight, g_s, g_s_perturbed
):
    num_choices = s.shape[1]
    smooth = epsilon / num_choices
    for i in prange(s.shape[0]):
        w, w_perturbed = weight[i], weight[i] * factor
        row_lse, row_lse_perturbed = lse[i], lse_perturbed[i]
        for k in range(num_choices):
            p = vexp(s.dtype.type(np.float64(s[i, k]) - row_lse))
            q = vexp(s.dtype.type(np.float64(s_perturbed[i, k]) - row_lse_perturbed))
            g_s[i, k] = w * p
            g_s_perturbed[i, k] = w_perturbed * (q - smooth)
        g_s[i, y[i]] -= w
        g_s_perturbed[i, y_perturbed[i]] -= w_perturbed * (1.0 - epsilon)


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
    scores, scores_perturbed = np.ascontiguousarray(s), np.ascontiguousarray(s_perturbed)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    labels_perturbed = labels if y_perturbed is None else np.ascontiguousarray(y_perturbed, dtype=np.int64)
    epsilon = 1.0 if counterfactual_target == "uniform" else float(smoothing)
    factor = float(counter_factor)
    batch = scores.shape[0]
    per_row, lse, lse_perturbed = (np.empty(batch, dtype=np.float64) for _ in range(3))
    _pinto_rows(
        scores, scores_perturbed, labels, labels_perturbed, epsilon, factor, per_row, lse, lse_perturbed
    )
    loss = reduce_rows(per_row, reduction, s.dtype)
    residuals = (
        scores,
        scores_perturbed,
        labels,
        labels_perturbed,
        epsilon,
        factor,
        lse,
        lse_perturbed,
        reduction,
    )
    return loss, residuals


def pinto_counterfactual_loss_backward(residuals, g_loss):
    scores, scores_perturbed, labels, labels_perturbed, epsilon, factor, lse, lse_perturbed, reduction = (
        residuals
    )
    batch = scores.shape[0]
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    g_s = np.empty(scores.shape, dtype=scores.dtype)
    g_s_perturbed = np.empty(scores.shape, dtype=scores.dtype)
    _pinto_backward_rows(
        scores,
        scores_perturbed,
        labels,
        labels_perturbed,
        epsilon,
        factor,
        lse,
        lse_perturbed,
        weight,
        g_s,
        g_s_perturbed,
    )
    return g_s, g_s_perturbed


IMPLS = {
    "pinto_counterfactual_loss": Impl(pinto_counterfactual_loss_forward, pinto_counterfactual_loss_backward)
}
