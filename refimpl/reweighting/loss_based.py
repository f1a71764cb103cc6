"""Loss-based sample weights (Dynamic Loss-Based Sample Reweighting for LLM Pretraining)."""

from __future__ import annotations

import numpy as np

from .._op import defop
from .._papers import LOSS_REWEIGHTING
from .._spec import Choice, Float, Real

__all__ = ["SPREAD_GUARD", "STRATEGIES", "loss_based_sample_weights", "normalized_losses"]

SPREAD_GUARD = 1e-6  # D = max(ℓmax − ℓmin, 1e-6): the official code's guard
STRATEGIES = ("linupper", "quadratic", "extremes", "identity", "uniform")


def normalized_losses(losses: np.ndarray, delta: float) -> np.ndarray:
    """``ℓ̃ = 2δℓ/D − δ(ℓmax + ℓmin)/D ∈ [−δ, δ]``, evaluated without cancellation.

    The same quantity is computed as ``δ·((ℓ − ℓmin) − (ℓmax − ℓ))/D``: both differences
    are small and exact or nearly so, whereas the two terms of the published form are
    each of size ``2δ|ℓ|/D`` and cancel (losses near 1e4 with a spread of 1 keep about one
    digit in float32). The result stays inside [−δ, δ] after rounding, and all-equal
    losses give exactly 0.
    """
    dtype = losses.dtype.type
    l_min, l_max = losses.min(), losses.max()
    spread = max(l_max - l_min, dtype(SPREAD_GUARD))  # D, guarded for (nearly) equal losses
    return dtype(delta) * ((losses - l_min) - (l_max - losses)) / spread


@defop(
    family="reweighting",
    paper=LOSS_REWEIGHTING,
    inputs={
        "losses": Float("N"),
        "strategy": Choice(*STRATEGIES),
        "r": Real(0, low_open=True),
        "delta": Real(0, low_open=True),
    },
    outputs=("weights",),
)
def loss_based_sample_weights(losses, *, strategy, r, delta=1.0):
    r"""Weights for the samples of a global batch from their losses: a softmax of a profile.

    The paper reweights the samples of each (global) batch by their current loss, to spend
    the gradient on the samples that are still informative. Losses are first mapped
    affinely onto [−δ, δ] (the hardest sample at +δ, the easiest at −δ), a *strategy*
    function f turns that position into a score, and the weights are a softmax of the
    scores at temperature r (the KL-regularized maximizer of ``Σ_i w_i f_i`` over the
    simplex). r is scheduled by the caller: large during warm-up (nearly uniform), then
    the paper's target value. Weights are used under a stop-gradient in
    ``Σ_i sg[w_i]·ℓ_i``, so this op has no VJP (the objective's VJP w.r.t. ℓ is just w).

    Forward::

        D    = max(ℓmax − ℓmin, 1e−6)
        ℓ̃_i  = 2δℓ_i/D − δ(ℓmax + ℓmin)/D   ∈ [−δ, δ]   (evaluated as δ((ℓ_i − ℓmin) − (ℓmax − ℓ_i))/D)
        f_i  = min(ℓ̃_i + δ, δ)     "linupper":  rises with the loss, flat over the upper half
               1 − ℓ̃_i²/δ²        "quadratic": peaks at mid-range losses, 0 at both ends
               |ℓ̃_i|              "extremes":  favours the easiest and the hardest samples
               ℓ̃_i                "identity":  rises linearly with the loss
        w_i  = exp((f_i − max_j f_j)/r) / Σ_k exp((f_k − max_j f_j)/r)
        w_i  = 1/n                 "uniform":   no reweighting (the baseline)

    The softmax subtracts ``max f`` first: f/r reaches δ/r (1000 at r = 1e−3), where a bare
    ``exp(f/r)`` — as in the official code — overflows.

    "identity" is the official code's strategy named "uniform": it returns ℓ̃ itself, so
    ``exp(ℓ̃/r)`` upweights hard samples exponentially in the normalized loss — not a
    uniform weighting. It is named for what it computes; "uniform" here is the true
    uniform baseline ``w = 1/n`` (r and δ are then unused).

    Edge cases: all losses equal gives D = 1e−6, ℓ̃ = 0 and uniform weights; n = 1 gives
    w = 1; r → 0 puts all the weight on the argmax of f; r → ∞ gives uniform weights.
    ℓ̃ (hence w) is invariant under ``ℓ → aℓ + b``, a > 0, while the spread exceeds 1e−6.

    Args:
        losses: per-sample (token-averaged) losses ℓ (n,), float32 or float64, gathered
            over the global batch.
        strategy: "linupper", "quadratic", "extremes", "identity" or "uniform" (required).
        r: temperature, > 0 (required; the paper schedules it, no default).
        delta: half-width δ > 0 of the normalized range (default 1).

    Returns:
        weights: w (n,), in the dtype of ``losses``; Σw = 1. The official per-device code
        multiplies by the world size because data-parallel training averages gradients.

    Reference: Sow et al., *Dynamic Loss-Based Sample Reweighting for Improved Large Language
    Model Pretraining*, ICLR 2025, arXiv:2502.06733; official code
    sowmaster/Sample-Level-Loss-Reweighting-ICLR-2025.

    >>> import numpy as np, refimpl
    >>> losses = np.array([1.0, 2.0, 4.0])  # ℓ̃ = [−1, −1/3, 1]
    >>> refimpl.reweighting.loss_based_sample_weights(losses, strategy="quadratic", r=1.0).round(6)
    array([0.22561, 0.54878, 0.22561])
    """
    dtype = losses.dtype.type
    n = losses.shape[0]
    if strategy == "uniform":
        return np.full(n, 1 / n, dtype=losses.dtype), None
    l_tilde = normalized_losses(losses, delta)
    delta = dtype(delta)
    if strategy == "linupper":
        f = np.minimum(l_tilde + delta, delta)
    elif strategy == "quadratic":
        f = 1 - l_tilde * l_tilde / (delta * delta)
    elif strategy == "extremes":
        f = np.abs(l_tilde)
    else:  # "identity"
        f = l_tilde
    # subtract the max score: every exponent is <= 0, so exp cannot overflow
    e = np.exp((f - f.max()) / dtype(r))
    weights = e / e.sum()
    return weights, None
