"""WEAT's loss: fused Numba row kernels, parallel over rows.

Mirrors ``refimpl/reweighting/weat.py``. The forward reads each row of both logit arrays
twice: the max-shifted log-sum-exps (``_vmath.row_log_sum_exp``), then ``KL = Σ p (log p −
log q)`` with ``p = exp(log p)`` in the input's precision (``_vmath.vexp``) and the sums in
float64. The energy weight ``w = 1/softplus(|LSE(z_nat)|)`` (detached) comes from the same
log-sum-exp. Only the logits and three row scalars are kept; the backward finds ``m =
argmax z_nat``, sums ``Σ_k p_k e_k`` with ``e_k = (z_nat,k − z_adv,k) − (z_nat,m − z_adv,m)``
and ``Σ_{k≠y}`` of the cross-entropy's probabilities, then recomputes ``p`` and ``q`` per
element and writes both cotangents::

    z̄_adv = c (β (q − p) + [weat_adv] (q − e_y))
    z̄_nat = c (β p (e − Σ_k p_k e_k) + [weat_nat] (p − e_y)),    c = L̄ w/B

(the label entry of ``probs − e_y`` as ``−Σ_{k≠y} probs_k``: no cancellation at confident rows).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.reweighting.weat import BETA

from .._jit import parallel_kernel
from .._vmath import row_log_sum_exp, vexp

WEAT_ADV, WEAT_NAT = 0, 1


@parallel_kernel(fastmath={"reassoc"})
def _weat_rows(z_nat, z_adv, y, beta, variant, per_row, lse_nat, lse_adv, kl, weight):
    for i in prange(z_nat.shape[0]):
        largest, log_total = row_log_sum_exp(z_nat, i)
        lse_p = largest + log_total
        largest, log_total = row_log_sum_exp(z_adv, i)
        lse_q = largest + log_total
        divergence = 0.0
        for k in range(z_nat.shape[1]):
            log_p = np.float64(z_nat[i, k]) - lse_p
            log_q = np.float64(z_adv[i, k]) - lse_q
            p = vexp(z_nat.dtype.type(log_p))  # p = 0 where it underflows: 0·finite = 0
            divergence += p * (log_p - log_q)
        magnitude = abs(lse_p)  # |E|, E = −LSE(z_nat)
        w = 1.0 / (magnitude + math.log1p(math.exp(-magnitude)))  # softplus(|E|): exp(−|E|) ≤ 1
        label = y[i]
        if variant == WEAT_ADV:
            cross_entropy = lse_q - np.float64(z_adv[i, label])
        else:
            cross_entropy = lse_p - np.float64(z_nat[i, label])
        per_row[i] = w * (cross_entropy + beta * divergence)
        lse_nat[i] = lse_p
        lse_adv[i] = lse_q
        kl[i] = divergence
        weight[i] = w


@parallel_kernel(fastmath={"reassoc"})
def _weat_backward_rows(z_nat, z_adv, y, beta, variant, lse_nat, lse_adv, scale, g_nat, g_adv):
    on_adv = 1.0 if variant == WEAT_ADV else 0.0  # which logits take the cross-entropy
    on_nat = 1.0 - on_adv
    for i in prange(z_nat.shape[0]):
        c = scale[i]
        lse_p, lse_q = lse_nat[i], lse_adv[i]
        label = y[i]
        top = 0  # m = argmax z_nat: e_k = (z_nat,k − z_adv,k) − (z_nat,m − z_adv,m), e_m = 0
        for k in range(1, z_nat.shape[1]):
            if z_nat[i, k] > z_nat[i, top]:
                top = k
        shift = np.float64(z_nat[i, top]) - np.float64(z_adv[i, top])
        spread = 0.0  # Σ_k p_k e_k
        for k in range(z_nat.shape[1]):
            p = vexp(z_nat.dtype.type(np.float64(z_nat[i, k]) - lse_p))
            spread += p * (np.float64(z_nat[i, k]) - np.float64(z_adv[i, k]) - shift)
        others = 0.0  # Σ_{k≠y} probs_k: the label entry of probs − e_y, without cancellation
        for k in range(z_nat.shape[1]):
            p = vexp(z_nat.dtype.type(np.float64(z_nat[i, k]) - lse_p))
            q = vexp(z_adv.dtype.type(np.float64(z_adv[i, k]) - lse_q))
            e = np.float64(z_nat[i, k]) - np.float64(z_adv[i, k]) - shift
            others += (on_adv * q + on_nat * p) * (k != label)
            g_adv[i, k] = c * (beta * (q - p) + on_adv * q)
            g_nat[i, k] = c * (beta * (p * (e - spread)) + on_nat * p)  # p (log p − log q − KL)
        p = vexp(z_nat.dtype.type(np.float64(z_nat[i, label]) - lse_p))  # the label entry, redone
        q = vexp(z_adv.dtype.type(np.float64(z_adv[i, label]) - lse_q))
        e = np.float64(z_nat[i, label]) - np.float64(z_adv[i, label]) - shift
        g_adv[i, label] = c * (beta * (q - p) - on_adv * others)
        g_nat[i, label] = c * (beta * (p * (e - spread)) - on_nat * others)


def weat_loss_forward(z_nat, z_adv, y, *, variant, beta=None):
    natural = np.ascontiguousarray(z_nat)
    adversarial = np.ascontiguousarray(z_adv)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    batch = natural.shape[0]
    beta_ = float(BETA[variant] if beta is None else beta)
    code = WEAT_ADV if variant == "weat_adv" else WEAT_NAT
    per_row, lse_nat, lse_adv, kl, weight = (np.empty(batch, dtype=np.float64) for _ in range(5))
    _weat_rows(natural, adversarial, labels, beta_, code, per_row, lse_nat, lse_adv, kl, weight)
    loss = np.asarray(per_row.sum() / batch, dtype=z_nat.dtype)
    return loss, (natural, adversarial, labels, beta_, code, lse_nat, lse_adv, weight)


def weat_loss_backward(residuals, g_loss):
    natural, adversarial, labels, beta, code, lse_nat, lse_adv, weight = residuals
    batch = natural.shape[0]
    scale = float(g_loss) / batch * weight  # c_i = L̄ w_i/B, float64
    g_nat = np.empty_like(natural)
    g_adv = np.empty_like(adversarial)
    _weat_backward_rows(natural, adversarial, labels, beta, code, lse_nat, lse_adv, scale, g_nat, g_adv)
    return g_nat, g_adv


IMPLS = {"weat_loss": Impl(weat_loss_forward, weat_loss_backward)}
