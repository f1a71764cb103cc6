"""WEAT's loss on CuPy: max-shifted log-softmaxes, fused per-element pieces.

Mirrors ``refimpl/reweighting/weat.py``. The row maxima and log-sum-exps are CuPy
reductions over the last axis; the KL terms ``p (log p − log q)`` and both cotangents are
fused kernels, the energy weight ``w = 1/softplus(|LSE(z_nat)|)`` (detached) is one fused
kernel on the row log-sum-exps. Nothing leaves the device; the loss stays a 0-d array::

    z̄_adv = c (β (q − p) + [weat_adv] (q − e_y))
    z̄_nat = c (β p (e − Σ_k p_k e_k) + [weat_nat] (p − e_y)),    c = L̄ w/B

with ``e_k = (z_nat,k − z_adv,k) − (z_nat,m − z_adv,m)``, ``m = argmax z_nat``, and the label
entry of ``probs − e_y`` as ``−Σ_{k≠y} probs_k`` (as the reference: no cancellation).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.reweighting.weat import BETA

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def shifted(z, z_max):
        return z - z_max  # the max is subtracted first: exp cannot overflow

    @fuse
    def kl_terms(log_p, log_q):
        return xp.exp(log_p) * (log_p - log_q)

    @fuse
    def energy_weight(lse):
        magnitude = abs(lse)  # |E|, E = −LSE(z_nat); softplus only exponentiates −|E| ≤ 0
        return 1 / (magnitude + xp.log1p(xp.exp(-magnitude)))

    @fuse
    def adversarial_grad(log_p, log_q, ce_grad, beta, c):
        return c * (beta * (xp.exp(log_q) - xp.exp(log_p)) + ce_grad)

    @fuse
    def natural_grad(log_p, e, spread, ce_grad, beta, c):
        return c * (beta * (xp.exp(log_p) * (e - spread)) + ce_grad)

    return SimpleNamespace(
        shifted=shifted,
        kl_terms=kl_terms,
        energy_weight=energy_weight,
        adversarial_grad=adversarial_grad,
        natural_grad=natural_grad,
    )


kernels_for = kernel_set(_kernels)


def _log_softmax_and_lse(k, xp, z):
    """``(log softmax(z), LSE(z))`` over the last axis, max-shifted."""
    z_max = z.max(axis=-1, keepdims=True)
    u = k.shifted(z, z_max)
    log_total = xp.log(xp.exp(u).sum(axis=-1, keepdims=True))
    return u - log_total, (z_max + log_total)[:, 0]


def weat_loss_forward(z_nat, z_adv, y, *, variant, beta=None):
    xp = xp_of(z_nat)
    k = kernels_for(z_nat)
    dtype = z_nat.dtype
    batch = z_nat.shape[0]
    beta_ = dtype.type(BETA[variant] if beta is None else beta)
    labels = y.astype(xp.int64)[:, None]
    log_p, lse_nat = _log_softmax_and_lse(k, xp, z_nat)
    log_q, _ = _log_softmax_and_lse(k, xp, z_adv)
    weights = k.energy_weight(lse_nat)
    kl = k.kl_terms(log_p, log_q).sum(axis=-1)
    log_probs = log_q if variant == "weat_adv" else log_p
    cross_entropy = -xp.take_along_axis(log_probs, labels, axis=1)[:, 0]
    loss = (weights * (cross_entropy + beta_ * kl)).sum() / dtype.type(batch)
    # e_k = d_k − d_m with m = argmax z_nat, from the logits: the backward's KL term keeps its digits
    difference = z_nat - z_adv
    e = difference - xp.take_along_axis(difference, z_nat.argmax(axis=-1)[:, None], axis=1)
    return xp.asarray(loss, dtype=dtype), (log_p, log_q, e, weights, labels, variant, beta_)


def weat_loss_backward(residuals, g_loss):
    log_p, log_q, e, weights, labels, variant, beta = residuals
    xp = xp_of(log_p)
    k = kernels_for(log_p)
    dtype = log_p.dtype
    batch, classes = log_p.shape
    c = (xp.asarray(g_loss, dtype=dtype) * weights / dtype.type(batch))[:, None]  # L̄ w_i/B
    p = xp.exp(log_p)
    spread = (p * e).sum(axis=-1, keepdims=True)  # Σ_k p_k e_k
    # the cross-entropy's probs − e_y, its label entry −Σ_{k≠y} probs_k (no cancellation)
    probs = xp.exp(log_q) if variant == "weat_adv" else p
    others = xp.arange(classes)[None, :] != labels
    ce_grad = xp.where(others, probs, -(probs * others).sum(axis=-1, keepdims=True))
    zero = xp.zeros((), dtype=dtype)
    on_adv = variant == "weat_adv"
    g_adv = k.adversarial_grad(log_p, log_q, ce_grad if on_adv else zero, beta, c)
    g_nat = k.natural_grad(log_p, e, spread, zero if on_adv else ce_grad, beta, c)
    return g_nat.astype(dtype, copy=False), g_adv.astype(dtype, copy=False)


IMPLS = {"weat_loss": Impl(weat_loss_forward, weat_loss_backward)}
