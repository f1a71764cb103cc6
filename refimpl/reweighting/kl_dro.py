"""KL-regularized DRO instance weights (Doubly Robust Instance-Reweighted Adversarial Training)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    FloatArray,
    IntScalar,
    Paper,
    RealScalar,
    logsumexp,
    op,
    softmax,
    softmax_backward,
)

__all__ = ["PAPER", "kl_dro_compositional_weights", "kl_dro_value", "kl_dro_weights"]

PAPER = Paper("Doubly Robust Instance-Reweighted Adversarial Training", arxiv="2308.00311", year=2024)


def _scaled_gaps(losses: np.ndarray, r: float) -> np.ndarray:
    """``(ℓ − max ℓ)/r <= 0``: dividing the gaps, not ℓ itself, so ``ℓ/r`` cannot overflow."""
    return (losses - losses.max()) / losses.dtype.type(r)


@op(
    inputs={"losses": FloatArray("N"), "r": RealScalar(0, low_open=True)},
    outputs=("weights",),
    differentiable=("losses",),
)
def kl_dro_weights(losses, *, r):
    r"""Instance weights of KL-regularized DRO: the softmax of the losses at temperature r.

    The paper weights the adversarial loss of each training example by the worst-case
    distribution over the examples, regularized towards uniform::

        w* = argmax_{w ∈ Δ_n}  Σ_i w_i ℓ_i − r·KL(w ‖ u_n)

    Setting the gradient of the Lagrangian to zero (``ℓ_i − r(log(n w_i) + 1) − μ = 0``) gives
    ``w_i ∝ exp(ℓ_i/r)``, i.e. ::

        w = softmax(ℓ/r),   evaluated as softmax((ℓ − max ℓ)/r)

    (the gaps are divided, not ℓ: ``ℓ/r`` overflows for small r). Hard (high-loss)
    examples get more weight; r → 0 puts all the weight on the largest loss, r → ∞ gives
    uniform weights. The weights are shift-invariant: ``w(ℓ + c) = w(ℓ)``.

    Backward. With ``x = ℓ/r`` and the softmax Jacobian ``∂w_i/∂x_j = w_i(δ_ij − w_j)``, the
    chain rule ``∂x_j/∂ℓ_j = 1/r`` gives ``∂w_i/∂ℓ_j = (1/r)(w_i δ_ij − w_i w_j)`` and, for a
    cotangent ``w̄`` on the weights::

        ℓ̄_j = Σ_i w̄_i ∂w_i/∂ℓ_j = (1/r)·w_j (w̄_j − ⟨w, w̄⟩)

    (the softmax VJP of ``_blocks``, scaled by 1/r). Needed only when a user differentiates
    through the weights; the paper's weighted objective uses them under a stop-gradient.

    Args:
        losses: per-example (adversarial) losses ℓ (n,), float32 or float64.
        r: KL-regularization strength r > 0 (required: tuned in the paper, no verified
            default).

    Returns:
        weights: w (n,), in the dtype of ``losses``; Σw = 1.

    Reference: Sow, Lin, Wang, Liang, *Doubly Robust Instance-Reweighted Adversarial
    Training*, ICLR 2024, arXiv:2308.00311 (official code not released).

    >>> import numpy as np, refimpl
    >>> refimpl.reweighting.kl_dro_weights(np.array([0.0, np.log(3.0)]), r=1.0).round(6)
    array([0.25, 0.75])
    """
    weights = softmax(_scaled_gaps(losses, r))
    return weights, (weights, r)


@kl_dro_weights.defvjp
def kl_dro_weights_backward(residuals, g_weights):
    weights, r = residuals
    g_losses = softmax_backward(weights, g_weights) / weights.dtype.type(r)
    return (g_losses,)


@op(
    inputs={"losses": FloatArray("N"), "r": RealScalar(0, low_open=True)},
    outputs=("value",),
    differentiable=("losses",),
)
def kl_dro_value(losses, *, r):
    r"""The value of the KL-regularized DRO objective: a soft maximum of the losses.

    Plugging ``w* = softmax(ℓ/r)`` into ``Σ_i w_i ℓ_i − r·KL(w ‖ u_n)`` gives the log-mean-exp::

        F(ℓ) = r·log((1/n) Σ_i exp(ℓ_i/r))

    It lies between the mean (r → ∞) and the maximum (r → 0) of the losses and is
    shift-equivariant, ``F(ℓ + c) = F(ℓ) + c``. Evaluated with the max shift
    ``x_i = (ℓ_i − ℓmax)/r <= 0`` and ``(1/n)Σ_i e^{x_i} − 1 = mean_i expm1(x_i)``::

        F = ℓmax + r·log1p(mean_i expm1(x_i))

    The ``log1p(mean(expm1))`` form keeps full precision when r ≫ the spread of the losses
    (all ``x_i`` ≈ 0), where ``log(Σ e^{x_i}) − log n`` cancels to ``log(1 + tiny)`` and
    the r → ∞ limit (the mean) would lose its digits.

    Backward. ``∂F/∂ℓ_j = r·(1/r)·exp(ℓ_j/r)/Σ_i exp(ℓ_i/r) = w_j`` (the weights of
    ``kl_dro_weights``), so for a cotangent ``ḡ`` on F::

        ℓ̄ = ḡ·w

    Args:
        losses: per-example losses ℓ (n,), float32 or float64.
        r: KL-regularization strength r > 0 (required).

    Returns:
        value: F(ℓ), a 0-d array in the dtype of ``losses``.

    Reference: Sow et al., arXiv:2308.00311.

    >>> import numpy as np, refimpl
    >>> round(float(refimpl.reweighting.kl_dro_value(np.array([0.0, np.log(3.0)]), r=1.0)), 6)
    0.693147
    """
    dtype = losses.dtype.type
    gaps = _scaled_gaps(losses, r)
    log_mean_exp = np.log1p(np.expm1(gaps).mean())
    value = losses.max() + dtype(r) * log_mean_exp
    weights = softmax(gaps)
    return np.asarray(value, dtype=losses.dtype), (weights,)


@kl_dro_value.defvjp
def kl_dro_value_backward(residuals, g_value):
    (weights,) = residuals
    return (g_value * weights,)


@op(
    inputs={
        "losses": FloatArray("B"),
        "log_u": FloatArray(allow=("-inf",)),  # −∞: u_{t−1} = 0, no history
        "r": RealScalar(0, low_open=True),
        "beta": RealScalar(0, 1, low_open=True),
        "n_train": IntScalar(1),
    },
    outputs=("weights", "log_u_new"),
)
def kl_dro_compositional_weights(losses, log_u, *, r, beta, n_train):
    r"""The paper's stochastic KL-DRO weights: a moving-average estimate of the normalizer.

    Over the full training set (n examples), ``w_i = exp(ℓ_i/r)/Σ_j exp(ℓ_j/r)`` needs a sum
    over all n examples. The paper's compositional estimator replaces it by a moving average
    of mini-batch means of ``exp(ℓ/r)``::

        u_t = (1 − β)·u_{t−1} + β·mean_{i ∈ batch} exp(ℓ_i/r)
        w_i = exp(ℓ_i/r) / (n·u_t)                 (i in the batch)

    so ``n·u_t`` estimates ``Σ_j exp(ℓ_j/r)`` and the batch's weights sum to ≈ B/n.

    Everything is kept in log space, since ``exp(ℓ/r)`` overflows for small r::

        log m     = lse_i(ℓ_i/r) − log B                          (log of the batch mean)
        log u_t   = logaddexp(log(1 − β) + log u_{t−1}, log β + log m)
        w_i       = exp(ℓ_i/r − log u_t − log n)

    The exponent is at most ``log(B/(β n))``: ``log u_t ≥ log β + ℓ_i/r − log B`` for every i
    in the batch, so w cannot overflow. ``log u_{t−1} = −∞`` stands for ``u_{t−1} = 0`` (no
    history); how u is initialized is the caller's choice (e.g. the first batch's
    ``log m``); the paper does not pin it. No VJP: the weights enter the paper's objective
    under a stop-gradient, and the bilevel (implicit) gradient through the attack δ* is out
    of scope.

    Args:
        losses: the batch's per-example (adversarial) losses ℓ (B,), float32 or float64.
        log_u: ``log u_{t−1}``, a 0-d array of the same dtype (finite, or −∞ for u = 0).
        r: KL-regularization strength r > 0 (required).
        beta: moving-average rate β ∈ (0, 1] (required; β = 1 uses the current batch alone).
        n_train: the number n of training examples, ≥ 1 (required).

    Returns:
        weights: w (B,), in the dtype of ``losses``.
        log_u_new: ``log u_t``, a 0-d array (the state for the next step).

    Reference: Sow et al., arXiv:2308.00311 (compositional implicit differentiation, CID).

    >>> import numpy as np, refimpl
    >>> w, log_u = refimpl.reweighting.kl_dro_compositional_weights(
    ...     np.array([0.0, np.log(3.0)]), np.array(0.0), r=1.0, beta=0.5, n_train=4)
    >>> w.round(6), round(float(np.exp(log_u)), 6)   # u = 0.5·1 + 0.5·mean(1, 3) = 1.5
    (array([0.166667, 0.5     ]), 1.5)
    """
    dtype = losses.dtype.type
    scaled = losses / dtype(r)
    log_batch_mean = logsumexp(scaled) - dtype(np.log(losses.shape[0]))
    with np.errstate(divide="ignore"):  # log(1 − β) = −∞ at β = 1: the history is dropped
        log_keep = dtype(np.log1p(-beta))
    log_u_new = np.logaddexp(log_keep + log_u, dtype(np.log(beta)) + log_batch_mean)
    weights = np.exp(scaled - log_u_new - dtype(np.log(n_train)))
    return (weights, np.asarray(log_u_new, dtype=losses.dtype)), None
