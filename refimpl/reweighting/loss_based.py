"""Loss-based sample weights (Dynamic Loss-Based Sample Reweighting for LLM Pretraining)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, IntArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = [
    "BURNOUT_STEPS",
    "SPREAD_GUARD",
    "STRATEGIES",
    "loss_based_sample_weights",
    "loss_reweighting_temperature",
    "loss_weighted_objective",
    "normalized_losses",
]

SPREAD_GUARD = 1e-6  # D = max(ℓmax − ℓmin, 1e-6): the official code's guard
STRATEGIES = ("linupper", "quadratic", "extremes", "identity", "uniform")
BURNOUT_STEPS = 1000  # the official trainer's default `burnout_steps`, used by every released config

PAPER = Paper(
    "Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining",
    arxiv="2502.06733",
    year=2025,
    code="sowmaster/Sample-Level-Loss-Reweighting-ICLR-2025",
)


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


@op(
    inputs={
        "losses": FloatArray("N"),
        "strategy": OneOf(*STRATEGIES),
        "r": RealScalar(0, low_open=True),
        "delta": RealScalar(0, low_open=True),
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
    ``exp(f/r)`` overflows. The official trainer does the same (``src/trainer.py``:
    ``g_func(f_losses - f_losses.max().item(), l=kl_reg)``, its ``g_func`` being a bare exp).

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


@op(
    inputs={
        "losses": FloatArray("N"),
        "weights": FloatArray("N"),
        "world_size": IntScalar(1),
    },
    outputs=("objective",),
    differentiable=("losses",),
)
def loss_weighted_objective(losses, weights, *, world_size=1):
    r"""The reweighted training objective ``Σ_i sg[w_i]·ℓ_i``: weights held constant.

    The weights of ``loss_based_sample_weights`` are computed from the losses but under a
    stop-gradient (``torch.no_grad`` in the official code): the model is trained on the
    weighted sum of its per-sample losses, and the gradient does not flow through the
    weights. This op is that sum, differentiable in the losses only.

    Forward::

        J = W · Σ_i w_i ℓ_i          (W = world_size)

    Backward. The weights are constants (``sg[w]``), so ``∂J/∂ℓ_i = W·w_i`` and, with the
    cotangent ``ḡ`` of the scalar J::

        ℓ̄_i = ḡ · W · w_i

    No cotangent is returned for ``weights``: that is the stop-gradient. (A user who wants
    to differentiate through the weights composes ``loss_based_sample_weights`` themselves;
    the paper does not.)

    World size. Data-parallel training averages the gradients of the W devices. The official
    code gathers the losses of the global batch, computes the weights over all of them
    (Σw = 1 over the global batch), keeps its own device's slice ``w_dev`` and minimizes
    ``W·Σ_{i∈dev} w_i ℓ_i``, so that the average over devices is ``Σ_{global} w_i ℓ_i``.
    ``world_size=W`` reproduces that per-device objective on a device's slice; the default
    W = 1 is the objective on the whole global batch. The official per-device loss also
    multiplies each term by ``B·n_i/Σ_dev n_k`` (B samples per device, n_i tokens of sample
    i): a factor of exactly 1 when the samples have equal token counts (packed sequences,
    as in its experiments); unequal counts are the caller's business (scale ℓ_i first).

    Args:
        losses: per-sample losses ℓ (n,), float32 or float64 (differentiable).
        weights: sample weights w (n,), same dtype, held constant (no cotangent), e.g. the
            output of ``loss_based_sample_weights`` or a device's slice of it.
        world_size: number of data-parallel devices W ≥ 1 (default 1: the global batch).

    Returns:
        objective: the scalar ``W·Σ w_i ℓ_i`` (a 0-d array in the dtype of ``losses``).

    Reference: Sow et al., arXiv:2502.06733; official code
    sowmaster/Sample-Level-Loss-Reweighting-ICLR-2025 (``src/trainer.py``, ``training_step``).

    >>> import numpy as np, refimpl
    >>> losses, weights = np.array([1.0, 2.0, 4.0]), np.array([0.2, 0.3, 0.5])
    >>> float(refimpl.reweighting.loss_weighted_objective(losses, weights))
    2.8
    >>> _, pullback = refimpl.vjp("loss_weighted_objective", losses, weights, world_size=2)
    >>> pullback(np.array(1.0))[0]
    array([0.4, 0.6, 1. ])
    """
    dtype = losses.dtype
    objective = dtype.type(world_size) * (weights * losses).sum()
    return np.asarray(objective, dtype=dtype), (weights, world_size)


@loss_weighted_objective.defvjp
def loss_weighted_objective_backward(residuals, g_objective):
    weights, world_size = residuals
    g_losses = g_objective * (weights.dtype.type(world_size) * weights)
    return (g_losses,)


@op(
    inputs={
        "steps": IntArray("N", low=0),
        "target_r": RealScalar(0, low_open=True),
        "burnout_steps": IntScalar(0),
    },
    outputs=("temperature",),
    nonfinite_outputs={"temperature": ("inf",)},  # +∞ during the burn-out: no reweighting
)
def loss_reweighting_temperature(steps, *, target_r, burnout_steps=BURNOUT_STEPS):
    r"""The temperature r of loss-based reweighting at each training step: ∞, then the target.

    The paper turns reweighting on only once the losses carry information: during the
    first ``burnout_steps`` optimizer steps every sample gets the same weight, afterwards the
    weights are ``loss_based_sample_weights(ℓ, r = target_r)`` with a constant temperature.
    "Same weight" is the r → ∞ limit of the softmax, so the schedule is::

        r(t) = +∞          for t <  burnout_steps     (no reweighting: w = 1/n)
               target_r    for t >= burnout_steps

    with t the optimizer step counted from 0 (the trainer's ``global_step``). A caller
    feeds r(t) = ∞ as ``strategy="uniform"`` (whose weights are exactly the limit 1/n) and
    a finite r(t) as the temperature of the chosen strategy.

    Pinned from the official code (the paper leaves the schedule to the caller):
    ``src/trainer.py`` of sowmaster/Sample-Level-Loss-Reweighting-ICLR-2025 skips the
    reweighting while ``global_step < burnout_steps`` (argument default 1000, and 1000 in
    every released config) and then uses the constant ``kl_reg`` as r (argument default
    1.0; the released configs use 1.0 with the quadratic strategy at 124M parameters and
    0.4 with the quadratic or extremes strategies at 210M/684M). A commented-out variant
    there lowers r at steps 10000 and 15000; it is not part of the released runs, and
    this op does not implement it. During the warm-up the official loss is the
    token-count-weighted mean ``Σ_i (n_i/Σ_k n_k)·ℓ_i`` (= the plain mean for equal
    token counts).

    Args:
        steps: optimizer steps t (N,), integers ≥ 0.
        target_r: the temperature after the warm-up, > 0 (required: 1.0 or 0.4 in the
            official configs, depending on model size and strategy).
        burnout_steps: number of initial steps without reweighting, ≥ 0 (default 1000).

    Returns:
        temperature: r(t) (N,), float64; ``inf`` during the warm-up.

    Reference: Sow et al., arXiv:2502.06733; official code
    sowmaster/Sample-Level-Loss-Reweighting-ICLR-2025 (``src/trainer.py``, ``config/methods``).

    >>> import numpy as np, refimpl
    >>> refimpl.reweighting.loss_reweighting_temperature(np.array([0, 999, 1000, 5000]), target_r=0.4)
    array([inf, inf, 0.4, 0.4])
    """
    temperature = np.where(steps < burnout_steps, np.inf, float(target_r))
    return temperature.astype(np.float64), None
