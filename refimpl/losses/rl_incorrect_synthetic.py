"""Monte-Carlo per-step advantages and the critical step (RL on Incorrect Synthetic Data Scales
the Efficiency of LLM Math Reasoning by Eight-Fold)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, BoolArray, Paper, RealScalar, op

__all__ = ["PAPER", "mc_step_advantages"]

PAPER = Paper(
    "RL on Incorrect Synthetic Data Scales the Efficiency of LLM Math Reasoning by Eight-Fold",
    arxiv="2406.14532",
    year=2024,
)


def _check_outcomes(arguments) -> None:
    steps, rollouts = arguments["outcomes"].shape
    if steps < 1:
        raise ArgumentError("outcomes", "at least one step (L >= 1 rows)", "L = 0")
    if rollouts < 1:
        raise ArgumentError("outcomes", "at least one rollout per step (M >= 1 columns)", "M = 0")


@op(
    inputs={"outcomes": BoolArray("L", "M"), "v_0": RealScalar(0, 1)},
    outputs=("q", "v", "advantages", "critical_step"),
    check=_check_outcomes,
)
def mc_step_advantages(outcomes, *, v_0):
    r"""Monte-Carlo step advantages of a reasoning trace, and its critical (most harmful) step.

    A response y = (y_1, …, y_L) to a question x is cut into L steps. The value of the prefix
    ``y_{1:i}`` is the probability that the policy, continuing from it, reaches a correct final
    answer; it is estimated by M rollouts from that prefix, scored by the final-answer
    verifier. A step's advantage is how much it changed that probability: positive for a step
    that helps, negative for a step that derails the solution. The paper builds its per-step
    DPO pairs (``per_step_dpo_loss``) from these advantages, the negative being cut at the
    step that lowers the success probability most — the critical step. Per-step DPO on such
    pairs is advantage-weighted RL (``advantage_weighted_loss``).

    Forward, with ``R_im = outcomes[i, m]`` (rollout m from the prefix ending at step i is
    correct) and ``c_i = Σ_m R_im`` (an integer)::

        Q̂_i = c_i / M                                  (i = 1 … L)
        V̂_1 = v_0,   V̂_i = Q̂_{i−1}   (i ≥ 2)          (the state before step i is the prefix y_{1:i−1})
        Â_i = Q̂_i − V̂_i
        i*  = argmin_i Â_i                              (the first such i on ties)

    Evaluation: ``Â_i = (c_i − c_{i−1}) / M`` for i ≥ 2, an exact integer difference rounded
    once, so two steps whose counts changed by the same amount have bitwise-equal advantages
    and the first-index tie rule holds exactly (``Q̂_i − Q̂_{i−1}`` in floats does not:
    ``0.3 − 0.1 ≠ 0.5 − 0.3``). Step 1 uses ``(c_1 − M·v_0)/M``, exact whenever ``M·v_0``
    is (v_0 = 0, 1, or any k/M with M a power of two); otherwise a tie with step 1 is decided
    on the rounded values. Small M gives noisy advantages and frequent ties.
    Not differentiable: the outcomes are sampled data (randomness is an input, drawn by the
    caller), and the advantages are constants for the loss that uses them.

    No default is invented: ``v_0`` (the value of the question alone, e.g. the success rate of
    M rollouts from x) is required.

    Args:
        outcomes: R (L, M), bool; ``R[i, m]`` is True when the m-th rollout from the prefix
            ending at step i + 1 (0-based row i) reaches a correct answer. L >= 1, M >= 1.
        v_0: V̂_1, the estimated success probability before the first step, in [0, 1].

    Returns:
        q: Q̂ (L,), float64 (the outcomes carry no float dtype), in [0, 1].
        v: V̂ (L,), float64: ``[v_0, Q̂_1, …, Q̂_{L−1}]``.
        advantages: Â (L,), float64, in [−1, 1]; ``Σ_i Â_i = Q̂_L − v_0`` (telescoping).
        critical_step: i* − 1, the 0-based row of the critical step, a 0-d int64 array.

    Reference: Setlur, Garg, Geng, Garg, Smith, Kumar, *RL on Incorrect Synthetic Data Scales
    the Efficiency of LLM Math Reasoning by Eight-Fold*, NeurIPS 2024, arXiv:2406.14532
    (per-step credit assignment with Monte-Carlo rollouts). No official code (the authors'
    repository holds only a README); the formulas are the paper's definitions.

    >>> import numpy as np, refimpl
    >>> R = np.array([[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    >>> q, v, a, i_star = refimpl.losses.mc_step_advantages(R, v_0=0.5)
    >>> q, v, a, int(i_star)
    (array([0.75, 0.5 , 0.  ]), array([0.5 , 0.75, 0.5 ]), array([ 0.25, -0.25, -0.5 ]), 2)
    """
    rollouts = outcomes.shape[1]
    counts = outcomes.sum(axis=1, dtype=np.int64)  # c_i, exact
    q = counts / np.float64(rollouts)
    v = np.concatenate([[np.float64(v_0)], q[:-1]])
    # integer numerators: equal count changes give bitwise-equal advantages (exact ties)
    numerators = np.empty(counts.shape, dtype=np.float64)
    numerators[0] = counts[0] - rollouts * np.float64(v_0)
    numerators[1:] = np.diff(counts)
    advantages = numerators / np.float64(rollouts)
    critical_step = np.asarray(np.argmin(advantages), dtype=np.int64)  # argmin: first index on ties
    return (q, v, advantages, critical_step), None
