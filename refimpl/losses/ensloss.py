"""EnsLoss: the stochastic calibrated loss-derivative surrogate (EnsLoss: Stochastic Calibrated
Loss Ensembles for Preventing Overfitting in Classification)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["DERIVATIVE_FLOOR", "DERIVATIVE_OFFSET", "PAPER", "ensloss_surrogate"]

PAPER = Paper(
    "EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing Overfitting in Classification",
    arxiv="2409.00908",
    year=2024,
    code="statmlben/ensLoss",
)

# statmlben/ensLoss, losses.py, ensLoss.forward: `np.maximum(rd_grad, -1.0)` (the derivatives are
# clipped to [−1, 0]) and `g_batch.detach() - 1e-6` (strictly negative: a calibrated loss)
DERIVATIVE_FLOOR = -1.0
DERIVATIVE_OFFSET = 1e-6


def box_cox_inverse(eps, lam):
    """``BoxCox⁻¹_λ(ε)``: ``exp(ε)`` for λ = 0, ``max(1 + λε, 0)^{1/λ}`` otherwise (the official
    ``ensLoss.BC_inv``); for λ < 0 a base of 0 gives +inf (clipped later). Shared by the backends."""
    xp_dtype = eps.dtype.type
    with np.errstate(over="ignore", divide="ignore"):
        if lam == 0:
            return np.exp(eps)
        base = np.maximum(xp_dtype(1) + xp_dtype(lam) * eps, xp_dtype(0))
        return np.power(base, xp_dtype(1.0 / lam))


@op(
    inputs={"s": FloatArray("N"), "eps": FloatArray("N"), "lam": RealScalar()},
    outputs=("loss",),
    differentiable=("s",),
    custom_vjp="EnsLoss is defined by its derivative: the sampled g is detached (sg[g]), so the "
    "backward is ∂L/∂s = g/n, not the derivative of the forward's value through g's dependence on s",
)
def ensloss_surrogate(s, eps, *, lam=0.0):
    r"""EnsLoss surrogate: a random calibrated loss derivative per batch, applied to the margins.

    EnsLoss ensembles surrogate losses the way dropout ensembles networks: at every batch it
    draws a fresh loss *derivative* g(s) of the margin ``s = y·f(x)`` instead of fixing a loss
    such as the logistic one. Calibration (a classifier-consistent loss) only requires the
    derivative to be negative and nondecreasing for margins up to 1 (Bartlett et al.), so the
    derivatives are drawn as order statistics: n values ``−BoxCox⁻¹_λ(ε)`` of standard-normal
    draws ``ε`` (λ = 0: negative log-normal), sorted and matched to the margins in ascending
    order, so the smallest margin receives the most negative derivative. Beyond margin 1 the
    derivative is divided by s (a superlinear decay of the tail). The surrogate ``mean sg[g]·s``
    has exactly g/n as its gradient, which is what SGD uses.

    Forward, for margins s (n,), draws ε (n,), Box-Cox λ::

        b_i = BoxCox⁻¹_λ(ε_i) = exp(ε_i) (λ = 0),  max(1 + λε_i, 0)^{1/λ} (λ ≠ 0)   (b ≥ 0, +inf allowed)
        d   = sort(−b) ascending, then d ← max(d, −1)
        π   = the stable argsort of s (ties keep their index order)
        g_{π(j)} = d_j                                                   (smallest s ← most negative d)
        g_i ← g_i / s_i   where s_i > 1
        g_i ← g_i − 1e−6
        L   = (1/n) Σ_i sg[g_i]·s_i

    Backward (by design, the custom VJP; ``sg`` stops the gradient through g)::

        s̄_i = ḡ·g_i/n

    It is not the derivative of L's value: g changes with s through the ranks (piecewise
    constant) and through the tail division (where g_i·s_i = d_i − 1e−6·s_i, whose derivative
    is −1e−6/n). Chain to the model's output with ``∂s/∂f = y`` (y ∈ {±1}) outside the op.
    Properties: −1 − 1e−6 ≤ g_i ≤ −1e−6 < 0, and g is nondecreasing in s among the margins ≤ 1.

    Defaults and sources (statmlben/ensLoss, ``losses.py``, ``ensLoss``): ``lam=0.0``
    (``self.lam = 0.0``; every shipped config keeps it, ``Trainer(period=-1)`` in ``train.py``
    never redraws it; with ``period > 0`` the training loop redraws ``λ ~ U(−1, 1)`` every
    ``period`` epochs, the caller's schedule here), the floor −1 (``np.maximum(rd_grad,
    -1.0)``), the tail division for ``s > 1`` and the offset ``1e−6`` (``g_batch.detach() -
    1e-6``). The draws ε are ``torch.randn`` in the official code: an input here. The official
    ``torch.sort(s_batch)`` is not a stable sort (tied margins receive their derivatives in an
    unspecified order); this op breaks ties by index.

    Args:
        s: margins ``y·f(x)`` (n,), float32 or float64.
        eps: standard-normal draws ε (n,), same dtype (the randomness, an input).
        lam: the Box-Cox λ, any real (default 0: exponential, i.e. log-normal derivatives).

    Returns:
        loss: the scalar surrogate L, in the dtype of ``s``.

    Reference: Ben Dai, *EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing
    Overfitting in Classification*, ICML 2025 (PMLR 267), arXiv:2409.00908; official code statmlben/ensLoss,
    ``losses.py`` (``ensLoss.forward``, ``ensLoss.BC_inv``) and ``train.py`` (the λ schedule).

    >>> import numpy as np, refimpl
    >>> # ε = 0 for both: b = 1, d = [−1, −1]; s = [2, 0.5]: g = [−1/2, −1] − 1e−6
    >>> loss = refimpl.losses.ensloss_surrogate(np.array([2.0, 0.5]), np.zeros(2))
    >>> bool(np.isclose(loss, ((-0.5 - 1e-6) * 2 + (-1 - 1e-6) * 0.5) / 2))
    True
    """
    dtype = s.dtype.type
    n = s.shape[0]
    # the sampled derivatives, sorted ascending (most negative first), clipped at −1
    b = box_cox_inverse(eps, lam)
    d = np.maximum(-np.sort(b)[::-1], dtype(DERIVATIVE_FLOOR))
    # matched to the margins in ascending order (stable: ties keep their index order)
    order = np.argsort(s, kind="stable")
    g = np.empty_like(s)
    g[order] = d
    # superlinear tail: divide by the margin beyond 1
    above = s > 1
    g[above] = g[above] / s[above]
    g = g - dtype(DERIVATIVE_OFFSET)
    loss = np.sum(g * s) / dtype(n)
    return dtype(loss), (g,)


@ensloss_surrogate.defvjp
def ensloss_surrogate_backward(residuals, g_loss):
    (g,) = residuals
    scale = g.dtype.type(np.asarray(g_loss, dtype=g.dtype)) / g.dtype.type(g.shape[0])
    return ((g * scale).astype(g.dtype, copy=False),)
