"""The forward and annealing areas of a learning-rate schedule and the loss curve they predict
(Scaling Law with Learning Rate Annealing, Tissue et al.)."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from ..authoring import ArgumentError, FloatArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = ["PAPER", "lr_annealing_areas", "lr_annealing_loss_curve"]

PAPER = Paper("Scaling Law with Learning Rate Annealing", arxiv="2408.11029", year=2024)


def _check_areas(arguments) -> None:
    lrs, warmup_steps = arguments["lrs"], arguments["warmup_steps"]
    if bool(np.any(lrs < 0)):
        raise ArgumentError("lrs", "learning rates η_i >= 0", f"minimum {lrs.min()}")
    if warmup_steps > lrs.shape[0]:
        raise ArgumentError(
            "warmup_steps", f"at most the schedule's length ({lrs.shape[0]} steps)", f"{warmup_steps}"
        )


@op(
    inputs={
        "lrs": FloatArray("N"),
        "decay_factor": RealScalar(0, 1),
        "warmup_steps": IntScalar(0),
        "warmup": OneOf("as_max", "actual"),
    },
    outputs=("S1", "S2"),
    check=_check_areas,
)
def lr_annealing_areas(lrs, *, decay_factor=0.999, warmup_steps=0, warmup="as_max"):
    r"""The forward area S_1 and the annealing area S_2 of a learning-rate schedule.

    The paper's scaling law predicts the loss at every step of training from two summaries of
    the schedule up to that step: the forward area S_1 (how far training has moved, the sum of
    the rates) and the annealing area S_2 (how much the rate has been lowered, with a momentum
    that lets an annealing keep paying off for a while after it happened)::

        S_1(s) = Σ_{i=0}^{s} η_i                                   (step 0 included)
        m_0 = 0,   m_i = λ m_{i−1} + (η_{i−1} − η_i)   (i ≥ 1)
        S_2(s) = Σ_{i=0}^{s} m_i

    The recurrence for m is a first-order linear filter of the rate drops ``Δ_i = η_{i−1} − η_i``
    (``m_i = Σ_{j≤i} λ^{i−j} Δ_j``), evaluated as ``scipy.signal.lfilter([1], [1, −λ], Δ)`` in
    float64. A constant rate gives S_2 = 0; a rising rate gives negative m.

    Warm-up convention (``warmup``): the authors' fitting script counts the warm-up steps with
    η = η_max (``max_i η_i``), not the linear ramp used in training (its comment points to §3.4 of
    the paper): warm-up then contributes η_max per step to S_1 and nothing to S_2
    (``"as_max"``, the default); ``"actual"`` uses the rates as given.

    Reference-only: bookkeeping of a schedule (a cumulative sum and a linear filter). Not
    differentiable.

    Args:
        lrs: the learning rates η_0 … η_{N−1} (N,), ≥ 0, float32 or float64, indexed by step
            from 0 (as used in training, warm-up included).
        decay_factor: λ in [0, 1], the momentum of the annealing area (default 0.999, the
            paper's and the authors' script's value).
        warmup_steps: W, the number of warm-up steps at the start of ``lrs`` (default 0: no
            warm-up, the schedule as given).
        warmup: "as_max" (default, the authors' script: η_i = max η for i < W) or "actual".

    Returns:
        S1: (N,) S_1(s), in the dtype of ``lrs``.
        S2: (N,) S_2(s), same dtype.

    Reference: Tissue, Wang, Wang, Zhou, Zhang, Xu, *Scaling Law with Learning Rate
    Annealing*, arXiv:2408.11029 (§3, the forward and annealing areas; λ = 0.999); the
    authors' fitting script (functions ``lr`` and ``Howe_Scaling_Law``; origin repository not
    identified) for the step-0-included sums and the warm-up convention.

    >>> import numpy as np, refimpl
    >>> S1, S2 = refimpl.other.lr_annealing_areas(np.array([2.0, 2.0, 1.0, 1.0]), decay_factor=0.5)
    >>> S1, S2                          # m = [0, 0, 1, 0.5]
    (array([2., 4., 5., 6.]), array([0. , 0. , 1. , 1.5]))
    """
    rates = lrs.astype(np.float64)
    if warmup == "as_max" and warmup_steps > 0:
        rates[:warmup_steps] = rates.max()  # the authors' script: warm-up counted at η_max
    drops = np.zeros_like(rates)
    drops[1:] = rates[:-1] - rates[1:]  # Δ_i = η_{i−1} − η_i, Δ_0 = 0 (m_0 = 0)
    momentum = lfilter([1.0], [1.0, -float(decay_factor)], drops)  # m_i = λ m_{i−1} + Δ_i
    forward_area = np.cumsum(rates)
    annealing_area = np.cumsum(momentum)
    return (forward_area.astype(lrs.dtype), annealing_area.astype(lrs.dtype)), None


def _check_curve(arguments) -> None:
    forward_area = arguments["S1"]
    if bool(np.any(forward_area <= 0)):
        raise ArgumentError(
            "S1",
            "forward areas S_1 > 0 (S_1^{−α} is infinite at 0: a schedule starting with η_0 = 0)",
            f"minimum {forward_area.min()}",
        )


@op(
    inputs={
        "S1": FloatArray("N"),
        "S2": FloatArray("N"),
        "L0": FloatArray(),
        "A": FloatArray(),
        "alpha": FloatArray(),
        "C": FloatArray(),
    },
    outputs=("loss",),
    differentiable=("L0", "A", "alpha", "C"),
    check=_check_curve,
)
def lr_annealing_loss_curve(S1, S2, L0, A, alpha, C):  # noqa: N803 - the paper's symbols
    r"""The loss curve of the LR-annealing scaling law: ``L(s) = L_0 + A·S_1^{−α} − C·S_2``.

    The validation loss at step s of a run is predicted from the schedule's forward area
    S_1(s) and annealing area S_2(s) (``lr_annealing_areas``): a power law in S_1 (more
    movement, lower loss) minus a term linear in S_2 (annealing lowers the loss at once). The
    four parameters are fitted to observed curves of a few schedules and then predict the
    curve of any other schedule.

    Forward, per step (``S_1^{−α}`` as ``exp(−α log S_1)``)::

        p_s = S_1(s)^{−α}
        L_s = L_0 + A p_s − C S_2(s)

    Backward. L is linear in L_0, A and C, and ``∂p_s/∂α = −p_s ln S_1(s)``; with the
    cotangent L̄ (N,), summing over steps::

        L̄_0 = Σ_s L̄_s
        Ā   = Σ_s L̄_s p_s
        ᾱ   = −A Σ_s L̄_s p_s ln S_1(s)
        C̄   = −Σ_s L̄_s S_2(s)

    These are the fitting gradients of the paper (fit outside the op: the authors' script
    minimizes a Huber loss, δ = 1e−3, on ``log L_obs − log L̂`` with L-BFGS-B, all four
    parameters ≥ 0). S_1 and S_2 are data (computed from the schedule), not differentiated.

    Reference-only: an elementwise formula over the N steps; its fitting loop is the user's.

    Args:
        S1: (N,) forward areas, > 0, float32 or float64.
        S2: (N,) annealing areas, same dtype.
        L0, A, alpha, C: 0-d arrays, the law's parameters (fitted; no defaults).

    Returns:
        loss: (N,) the predicted loss, in the dtype of ``S1``.

    Reference: Tissue et al., *Scaling Law with Learning Rate Annealing*, arXiv:2408.11029,
    Eq. (1) (``L(s) = L_0 + A·S_1^{−α} − C·S_2``).

    >>> import numpy as np, refimpl
    >>> p = [np.array(v) for v in (2.0, 1.0, 0.5, 0.1)]     # L0, A, α, C
    >>> refimpl.other.lr_annealing_loss_curve(np.array([1.0, 4.0]), np.array([0.0, 2.0]), *p)
    array([3. , 2.3])
    """
    dtype = S1.dtype
    power = np.exp(-alpha.astype(dtype) * np.log(S1))  # S_1^{−α}
    loss = L0.astype(dtype) + A.astype(dtype) * power - C.astype(dtype) * S2
    return loss.astype(dtype, copy=False), (S1, S2, A, power)


@lr_annealing_loss_curve.defvjp
def lr_annealing_loss_curve_backward(residuals, g_loss):
    forward_area, annealing_area, amplitude, power = residuals
    dtype = forward_area.dtype
    g = np.asarray(g_loss).astype(dtype, copy=False)
    g_power = g * power
    g_l0 = g.sum()
    g_a = g_power.sum()
    g_alpha = -amplitude.astype(dtype) * (g_power * np.log(forward_area)).sum()  # ∂p/∂α = −p ln S_1
    g_c = -(g * annealing_area).sum()
    return tuple(np.asarray(value, dtype=dtype) for value in (g_l0, g_a, g_alpha, g_c))
