"""Temperature sampling, scalarization and Cooldown (Upsample or Upweight? Balanced Training on
Heavily Imbalanced Datasets)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, Paper, RealScalar, logsumexp, op, softmax

__all__ = [
    "PAPER",
    "cooldown_temperature_schedule",
    "scalarization_weights",
    "temperature_sampling_probs",
]

PAPER = Paper(
    "Upsample or Upweight? Balanced Training on Heavily Imbalanced Datasets",
    arxiv="2410.04579",
    year=2025,
)


def _check_counts(arguments) -> None:
    counts = arguments["counts"]
    if bool(np.any(counts < 0)):
        raise ArgumentError("counts", "domain sizes n_i >= 0", f"values in [{counts.min()}, {counts.max()}]")
    if not bool(np.any(counts > 0)):
        raise ArgumentError("counts", "at least one non-empty domain (n_i > 0)", "all sizes 0")


def _log_counts(counts: np.ndarray) -> np.ndarray:
    """``log n_i``, with ``-inf`` for an empty domain (so that it gets probability 0)."""
    with np.errstate(divide="ignore"):  # log(0) = -inf on purpose
        return np.log(counts)


@op(
    inputs={"counts": FloatArray("D"), "tau": RealScalar(0, low_open=True)},
    outputs=("probs",),
    check=_check_counts,
)
def temperature_sampling_probs(counts, *, tau):
    r"""Temperature sampling: draw domain i with probability ∝ n_i^{1/τ} (upsampling).

    With D domains (languages) of very different sizes n_i, sampling in proportion to size
    (τ = 1) starves the small domains; raising τ flattens the distribution towards uniform
    (τ → ∞), i.e. upsamples the low-resource domains. Temperature sampling changes which
    examples the batches contain; ``scalarization_weights`` reaches the same expected gradient
    by reweighting the losses of naturally sampled batches instead.

    Forward::

        q_i    = n_i / N,  N = Σ_j n_j                       (natural distribution, τ = 1)
        p_i(τ) = n_i^{1/τ} / Σ_j n_j^{1/τ} = softmax(log n / τ)_i

    computed as a softmax of ``log n/τ`` (max-subtracted): ``n_i^{1/τ}`` itself overflows for
    n_i = 1e9 and τ < 0.1. An empty domain (n_i = 0, ``log n_i = −∞``) gets p_i = 0 exactly.
    No VJP: the counts are data, not parameters.

    Args:
        counts: domain sizes n (D,), float32 or float64, finite and ≥ 0, at least one > 0.
        tau: sampling temperature τ > 0 (required; τ = 1 is proportional sampling, large τ
            tends to uniform over the non-empty domains, τ < 1 sharpens towards the largest).

    Returns:
        probs: p(τ) (D,), in the dtype of ``counts``; Σp = 1.

    Reference: Li, Xu, Tan, Murray, Khashabi, *Upsample or Upweight? Balanced Training on
    Heavily Imbalanced Datasets*, NAACL 2025, arXiv:2410.04579.

    >>> import numpy as np, refimpl
    >>> refimpl.reweighting.temperature_sampling_probs(np.array([1.0, 4.0, 0.0]), tau=2.0).round(6)
    array([0.333333, 0.666667, 0.      ])
    """
    log_n = _log_counts(counts)
    probs = softmax(log_n / counts.dtype.type(tau))  # subtract the max inside: no overflow
    return probs, None


@op(
    inputs={"counts": FloatArray("D"), "tau": RealScalar(0, low_open=True)},
    outputs=("weights",),
    check=_check_counts,
)
def scalarization_weights(counts, *, tau):
    r"""Scalarization: sample domains naturally (∝ n_i) and upweight their losses by p_i(τ)/q_i.

    The loss-reweighting counterpart of ``temperature_sampling_probs``: batches are drawn from
    the natural distribution q and domain i's loss is multiplied by ``w_i = p_i(τ)/q_i``, so
    the *expected* gradient is the temperature-sampled one::

        E_{i∼p}[∇ℓ_i] = Σ_i p_i ∇ℓ_i = Σ_i q_i (p_i/q_i) ∇ℓ_i = E_{i∼q}[w_i ∇ℓ_i]

    The two estimators have different variances: the paper proves and measures that
    temperature sampling has the lower one (faster convergence, more overfitting on the
    small domains).

    Forward, in log space (``n_i^{1/τ}`` and ``N`` overflow or lose digits otherwise)::

        log w_i = log p_i − log q_i = (1/τ − 1)·log n_i − lse_j(log n_j / τ) + log N
        w_i     = exp(log w_i)   for n_i > 0,      w_i = 0 for an empty domain

    τ = 1 gives w = 1; τ → ∞ gives ``w_i = N/(D'·n_i)`` (D' non-empty domains). No VJP.

    Args:
        counts: domain sizes n (D,), float32 or float64, finite and ≥ 0, at least one > 0.
        tau: temperature τ > 0 (required).

    Returns:
        weights: w (D,), in the dtype of ``counts``; ``Σ_i q_i w_i = 1``.

    Reference: Li et al., arXiv:2410.04579 (Scalarization).

    >>> import numpy as np, refimpl
    >>> refimpl.reweighting.scalarization_weights(np.array([1.0, 4.0, 0.0]), tau=2.0).round(6)
    array([1.666667, 0.833333, 0.      ])
    """
    dtype = counts.dtype.type
    log_n = _log_counts(counts)
    inverse_tau = dtype(1 / tau)
    log_normalizer = logsumexp(log_n * inverse_tau)  # lse_j(log n_j / τ), max-shifted
    log_total = np.log(counts.sum())
    nonempty = counts > 0
    safe_log_n = np.where(nonempty, log_n, dtype(0))  # keep -inf out of (1/τ − 1)·log n
    log_w = (inverse_tau - dtype(1)) * safe_log_n - log_normalizer + log_total
    weights = np.where(nonempty, np.exp(log_w), dtype(0)).astype(counts.dtype, copy=False)
    return weights, None


def _check_schedule(arguments) -> None:
    taus, switch_steps = arguments["taus"], arguments["switch_steps"]
    if bool(np.any(taus <= 0)):
        raise ArgumentError("taus", "temperatures τ_k > 0", f"values in [{taus.min()}, {taus.max()}]")
    if int(switch_steps[0]) != 0:
        raise ArgumentError(
            "switch_steps",
            "the first stage to start at step 0 (switch_steps[0] = 0)",
            f"{int(switch_steps[0])}",
        )
    if switch_steps.shape[0] > 1 and not bool(np.all(np.diff(switch_steps) > 0)):
        raise ArgumentError("switch_steps", "strictly increasing stage starts", f"{switch_steps.tolist()}")


@op(
    inputs={"steps": IntArray("N", low=0), "taus": FloatArray("S"), "switch_steps": IntArray("S", low=0)},
    outputs=("temperature",),
    check=_check_schedule,
)
def cooldown_temperature_schedule(steps, taus, switch_steps):
    r"""Cooldown: the sampling temperature τ(t), high early in training and lowered later.

    The paper's Cooldown starts with a high temperature (strong upsampling of the
    low-resource domains: fast convergence thanks to the low gradient variance of
    temperature sampling) and lowers it later in training (less overfitting of the small
    domains). The schedule is piecewise constant with S stages::

        τ(t) = taus[k]   for switch_steps[k] <= t < switch_steps[k + 1]   (k = 0 … S − 1)

        (the last stage lasts to the end of training; switch_steps[0] = 0)

    The stage of step t is ``searchsorted(switch_steps, t, side="right") − 1``: a step equal
    to a switch point already belongs to the new stage. Feed τ(t) to
    ``temperature_sampling_probs`` at every step.

    Not pinned: the paper's temperatures and switch points are not pinned, so both
    are required arguments; nothing is defaulted. The schedule's *shape* (a cooldown, i.e.
    nonincreasing taus) is the paper's intent but not enforced: any positive taus are
    accepted.

    Args:
        steps: training steps t (N,), integers ≥ 0.
        taus: the temperature of each stage (S,), float32 or float64, > 0 (required).
        switch_steps: the first step of each stage (S,), integers, strictly increasing,
            starting at 0 (required).

    Returns:
        temperature: τ(t) (N,), in the dtype of ``taus``.

    Reference: Li et al., arXiv:2410.04579 (Cooldown).

    >>> import numpy as np, refimpl
    >>> refimpl.reweighting.cooldown_temperature_schedule(
    ...     np.array([0, 99, 100, 250]), np.array([5.0, 1.0]), np.array([0, 100]))
    array([5., 5., 1., 1.])
    """
    stage = np.searchsorted(switch_steps, steps, side="right") - 1
    return taus[stage], None
