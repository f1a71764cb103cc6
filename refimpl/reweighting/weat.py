"""Energy instance weights of WEAT (Shedding More Light on Robust Classifiers under the lens of
Energy-based Models)."""

from __future__ import annotations

import numpy as np

from ..authoring import Example, FloatArray, Paper, known_deviation, logsumexp, op, softplus

__all__ = ["PAPER", "energy_instance_weight"]

PAPER = Paper(
    "Shedding More Light on Robust Classifiers under the lens of Energy-based Models",
    arxiv="2407.06315",
    year=2024,
    code="OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM",
)


@op(inputs={"z_nat": FloatArray("B", "K")}, outputs=("weights",))
def energy_instance_weight(z_nat):
    r"""WEAT's instance weight: ``1/softplus(|E(x)|)`` of the energy of the natural logits.

    Read as an energy-based model, a classifier with logits ``z(x)`` assigns ``x`` the
    energy ``E(x) = −log Σ_k exp z_k(x)`` (low energy: in-distribution for the model). The
    paper finds that samples of high energy magnitude dominate adversarial training, and
    down-weights them: Weighted Energy Adversarial Training (WEAT) multiplies each sample's
    TRADES loss by a weight that decays like ``1/|E|``, computed under a stop-gradient
    (detached) from the natural, not the adversarial, logits.

    Forward, per row of ``z_nat``::

        E_i = −LSE(z_nat,i) = −(m_i + log Σ_k exp(z_ik − m_i)),   m_i = max_k z_ik
        w_i = 1 / softplus(|E_i|),   softplus(u) = u + log1p(exp(−u))   (u = |E| ≥ 0)

    Both steps are evaluated without overflow: the row max is subtracted inside the
    log-sum-exp, and the softplus only exponentiates ``−|E| ≤ 0``. ``softplus(u) ≥ log 2``
    with equality at ``E = 0``, so ``w ∈ (0, 1/log 2]``: 1/log 2 ≈ 1.4427 at zero energy,
    ``w → 1/|E|`` for large |E|; w depends on E only through |E| (invariant to its sign).
    The official ``log(1 + exp(|E|))`` overflows once ``|E| > 88.7`` in float32 (709.8 in
    float64) and then silently returns w = 0 (a known deviation, ``refimpl deviations``).
    Not differentiable: the weights are detached in WEAT.

    Args:
        z_nat: natural logits (B, K), float32 or float64, finite.

    Returns:
        weights: w (B,), in the dtype of ``z_nat``, in (0, 1/log 2].

    Reference: Mirza, Briglia, Beadini, Masi, *Shedding More Light on Robust Classifiers
    under the lens of Energy-based Models*, ECCV 2024, arXiv:2407.06315 (WEAT); official
    code OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM (``Adversarial ML/WEAT_loss.py``,
    ``energy_x`` and ``compute_weights``).

    >>> import numpy as np, refimpl
    >>> z = np.array([[0.0], [np.log(np.e - 1)], [-np.log(np.e - 1)]])  # E = 0, ∓log(e − 1)
    >>> refimpl.reweighting.energy_instance_weight(z).round(6)  # 1/log 2, 1/log(e) twice
    array([1.442695, 1.      , 1.      ])
    """
    energy = -logsumexp(z_nat, axis=-1)  # max-shifted: no overflow
    weights = 1 / softplus(np.abs(energy))  # softplus(u) = u + log1p(e^{−u}): no overflow
    return weights.astype(z_nat.dtype, copy=False), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    energy_instance_weight,
    name="weat-weight-softplus-overflow",
    source="OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM, Adversarial ML/WEAT_loss.py, compute_weights "
    "(`1/(torch.log(1 + torch.exp(torch.abs(energy))))`)",
    official="evaluates softplus(|E|) as log(1 + exp(|E|)): exp overflows to inf once |E| > 88.7 in float32 "
    "(709.8 in float64), and the weight becomes 1/inf = 0, silently dropping the sample from the loss",
    paper="w = 1/log(1 + exp(|E|)), positive for every finite E (about 1/|E| for large |E|); refimpl "
    "evaluates softplus as |E| + log1p(exp(−|E|))",
    example=Example(
        args=(np.array([[100.0, 0.0]], dtype=np.float32),),
        official={"weights": [0.0]},
        reference={"weights": [0.01]},
        note="E = −LSE([100, 0]) = −100 − log1p(e^−100): exp(100) is inf in float32",
    ),
)
