"""PAC threshold calibration of a nested family of prediction sets (PAC Prediction Sets for
Large Language Models of Code, Khakhar et al.)."""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "pac_threshold_calibration"]

PAPER = Paper("PAC Prediction Sets for Large Language Models of Code", arxiv="2302.08703", year=2023)


def largest_error_count(n: int, epsilon: float, delta: float) -> int:
    """``k* = max{k ≥ 0 : BinomCDF(k; n, ε) ≤ δ}``, or −1 when even k = 0 exceeds δ.

    The CDF is evaluated in log space (``scipy.stats.binom.logcdf``) for every k at once; it
    increases in k, so k* is the number of k whose CDF is at most δ, minus one.
    """
    log_cdf = binom.logcdf(np.arange(n + 1), n, epsilon)
    return int(np.count_nonzero(log_cdf <= np.log(delta))) - 1


@op(
    inputs={
        "scores": FloatArray("n"),
        "epsilon": RealScalar(0, 1, low_open=True, high_open=True),
        "delta": RealScalar(0, 1, low_open=True, high_open=True),
    },
    outputs=("tau", "k"),
    nonfinite_outputs={"tau": ("-inf",)},
)
def pac_threshold_calibration(scores, *, epsilon, delta):
    r"""PAC threshold: the largest τ whose prediction sets miss at most ε of the distribution,
    with probability at least 1 − δ over the calibration set.

    A nested family of prediction sets (shrinking as τ grows: τ' ≤ τ ⇒ C_τ ⊆ C_τ'; for code,
    the programs whose partial-program holes keep the model's probability above τ) is
    calibrated on n held-out examples. Each example's score ``τ_i`` is the largest τ whose set
    still contains its label, so the label is missed exactly when ``τ > τ_i``, and the number
    of calibration misses at τ is ``#{i : τ_i < τ}``. The threshold allows at most k* misses,
    where k* is the largest count a miss rate above ε would produce with probability at most
    δ (a binomial tail)::

        k*  = max{k ≥ 0 : Σ_{j=0}^{k} C(n, j) ε^j (1 − ε)^{n−j} ≤ δ}
        τ̂   = the (k* + 1)-th smallest τ_i          (sorted ascending, index k*)

    With no such k (``(1 − ε)^n > δ``: too few examples) the set must be the trivial one
    (everything), τ̂ = −inf and k* = −1. Guarantee: ``P_calib[P(y ∉ C_τ̂(x)) ≤ ε] ≥ 1 − δ``.
    The binomial CDF is evaluated in log space (SciPy) for all k at once. Ties among the τ_i
    are harmless: at τ̂ the misses are the τ_i strictly below it, at most k*.

    Reference-only: a one-off calibration (a sort and a binomial tail). Not differentiable.
    Out of scope: the integer linear program choosing which AST subtrees become holes.

    Args:
        scores: (n,) calibration scores τ_i, float32 or float64.
        epsilon: the allowed miss rate ε in (0, 1).
        delta: the allowed failure probability δ in (0, 1).

    Returns:
        tau: 0-d, τ̂ in the dtype of ``scores`` (−inf for the trivial set).
        k: 0-d int64, k* (−1 for the trivial set).

    Reference: Khakhar, Mell, Bastani, *PAC Prediction Sets for Large Language Models of
    Code*, ICML 2023, arXiv:2302.08703 (§3, the PAC prediction-set algorithm of Park et al.,
    *PAC Confidence Sets for Deep Neural Networks via Calibrated Prediction*, ICLR 2020).

    >>> import numpy as np, refimpl
    >>> tau, k = refimpl.other.pac_threshold_calibration(np.arange(100.0), epsilon=0.1, delta=0.05)
    >>> float(tau), int(k)              # BinomCDF(4; 100, 0.1) = 0.0237 <= 0.05 < CDF(5) = 0.0576
    (4.0, 4)
    """
    k = largest_error_count(scores.shape[0], float(epsilon), float(delta))
    if k < 0:
        tau = np.array(-np.inf, dtype=scores.dtype)  # the trivial set: every label
    else:
        tau = np.sort(scores)[k].astype(scores.dtype)
    return (np.asarray(tau, dtype=scores.dtype), np.asarray(k, dtype=np.int64)), None
