"""ELR loss on CuPy: a max-shifted log-softmax, then fused per-element terms and row sums.

Mirrors ``refimpl/regularizers/elr.py``. The row maxima, log-sum-exps and the row sums of
``p_k (1 − t_k)`` (paper: no cancellation) or ``t_k p̃_k`` (official clamp) are CuPy
reductions over the last axis; p, the clamp and both gradient forms are fused kernels.
Nothing leaves the device; the loss stays a 0-d array.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.regularizers.elr import CLAMP_HIGH, CLAMP_LOW

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def probabilities(z, log_normalizer):
        return xp.exp(z - log_normalizer)

    @fuse
    def paper_terms(p, t):
        return p * (1 - t)  # summed: D = Σ p_k (1 − t_k)

    @fuse
    def clamped_terms(p, t, low, high):
        return t * xp.minimum(xp.maximum(p, low), high)  # summed: ⟨t, p̃⟩

    @fuse
    def paper_grad(p, t, d, lam):
        # CE part p plus λ·p ⊙ (u/D − 1), u = 1 − t (the label's −1 is added afterwards)
        return lam * p * ((1 - t) / d - 1) + p

    @fuse
    def clamp_a(p, t, d, low, high):
        # a_k = −m_k t_k/D, m_k = 1 inside the clamp (bounds inclusive, as torch.clamp)
        return xp.where((p >= low) & (p <= high), -t / d, 0)

    @fuse
    def clamp_grad(p, a, a_dot_p, lam):
        return lam * p * (a - a_dot_p) + p

    return SimpleNamespace(
        probabilities=probabilities,
        paper_terms=paper_terms,
        clamped_terms=clamped_terms,
        paper_grad=paper_grad,
        clamp_a=clamp_a,
        clamp_grad=clamp_grad,
    )


kernels_for = kernel_set(_kernels)


def elr_loss_forward(z, y, idx, targets, *, lam, clamp=False):
    xp = xp_of(z)
    k = kernels_for(z)
    dtype = z.dtype.type
    t = targets[idx]
    z_max = z.max(axis=-1, keepdims=True)  # subtract the row max: exp cannot overflow
    log_normalizer = z_max + xp.log(xp.exp(z - z_max).sum(axis=-1, keepdims=True))
    p = k.probabilities(z, log_normalizer)
    label_logit = xp.take_along_axis(z, y[:, None].astype(xp.int64), axis=1)
    cross_entropy = (log_normalizer - label_logit)[:, 0]
    if clamp:
        low, high = dtype(CLAMP_LOW), dtype(CLAMP_HIGH)
        denominator = 1 - k.clamped_terms(p, t, low, high).sum(axis=-1)
    else:
        denominator = k.paper_terms(p, t).sum(axis=-1)
    loss = cross_entropy.mean() + dtype(lam) * xp.log(denominator).mean()
    return xp.asarray(loss, dtype=z.dtype), (p, y, t, denominator, lam, clamp)


def elr_loss_backward(residuals, g_loss):
    p, y, t, denominator, lam, clamp = residuals
    xp = xp_of(p)
    k = kernels_for(p)
    dtype = p.dtype.type
    d = denominator[:, None]
    if clamp:
        a = k.clamp_a(p, t, d, dtype(CLAMP_LOW), dtype(CLAMP_HIGH))
        g_z = k.clamp_grad(p, a, (a * p).sum(axis=-1, keepdims=True), dtype(lam))
    else:
        g_z = k.paper_grad(p, t, d, dtype(lam))
    rows = xp.arange(p.shape[0])
    g_z[rows, y] -= 1
    g_z *= g_loss.astype(p.dtype) / dtype(p.shape[0])
    return (g_z.astype(p.dtype, copy=False),)


IMPLS = {"elr_loss": Impl(elr_loss_forward, elr_loss_backward)}
