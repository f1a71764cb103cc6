"""Monte-Carlo per-step advantages, the critical step, per-step DPO and the advantage-weighted
loss (RL on Incorrect Synthetic Data Scales the Efficiency of LLM Math Reasoning by Eight-Fold)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    BoolArray,
    FloatArray,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    op,
    reduce_rows,
    row_weights,
    sigmoid,
    softplus,
)

__all__ = ["PAPER", "advantage_weighted_loss", "mc_step_advantages", "per_step_dpo_loss"]

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


def _refuse_positive_log_probs(arguments, names) -> None:
    """Log-probabilities of discrete token sequences are ≤ 0: a positive entry is most often a
    negative log-likelihood (a loss) passed where its negation belongs."""
    for name in names:
        values = arguments[name]
        xp = array_namespace(values)
        positive = values > 0
        if bool(xp.any(positive)):
            index = int(xp.argmax(positive))
            raise ArgumentError(
                name,
                "log-probabilities ≤ 0 (log π of a discrete sequence; pass log π, not the "
                "negative log-likelihood −log π)",
                f"{float(values[index])!r} at index {index}",
            )


_DPO_LOG_PROBS = (
    "policy_chosen_logps",
    "policy_rejected_logps",
    "reference_chosen_logps",
    "reference_rejected_logps",
)


def _check_dpo(arguments) -> None:
    _refuse_positive_log_probs(arguments, _DPO_LOG_PROBS)


@op(
    inputs={
        "policy_chosen_logps": FloatArray("B"),
        "policy_rejected_logps": FloatArray("B"),
        "reference_chosen_logps": FloatArray("B"),
        "reference_rejected_logps": FloatArray("B"),
        "beta": RealScalar(0, low_open=True),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("policy_chosen_logps", "policy_rejected_logps"),
    check=_check_dpo,
)
def per_step_dpo_loss(
    policy_chosen_logps,
    policy_rejected_logps,
    reference_chosen_logps,
    reference_rejected_logps,
    *,
    beta,
    reduction="mean",
):
    r"""Per-step DPO: the DPO logistic loss on pairs whose negative is cut at a critical step.

    DPO (Rafailov et al. 2023) fits a policy π to preference pairs (y⁺ ≻ y⁻) through the
    implicit reward ``β log π(y|x)/π_ref(y|x)``: the loss is the logistic loss of the
    reward margin. The paper's per-step variant keeps this loss and changes the pairs: for a
    question x, y⁺ is a correct (positive) response and y⁻ an incorrect (negative) one
    truncated after its critical step, the step whose Monte-Carlo advantage is lowest
    (``mc_step_advantages``). Pushing down y⁻ then pushes down that step, not the useful
    steps before it; the paper shows that this per-step DPO is advantage-weighted RL
    (``advantage_weighted_loss``). The pairs are built upstream: this op receives the
    summed log-probabilities of each sequence under the policy and the frozen reference.

    Forward, per pair i (every log-probability a sum over the sequence's tokens)::

        Δ_i = [log π(y⁺_i) − log π_ref(y⁺_i)] − [log π(y⁻_i) − log π_ref(y⁻_i)]
        ℓ_i = −log σ(βΔ_i) = softplus(−βΔ_i)
        L   = mean_i ℓ_i   (reduction="mean"; "sum"; "none")

    evaluated as written: the two log-ratios first (each a difference of the same sequence's
    log-probabilities under two models, which are close), then their difference, then the
    stable softplus ``max(u, 0) + log1p(exp(−|u|))`` (``log σ(u) = −softplus(−u)``: no
    ``log`` of a sigmoid that underflowed to 0 when βΔ ≪ 0, no overflow when βΔ ≫ 0).

    Backward. With ``u = −βΔ``, ``∂ℓ/∂u = σ(u) = σ(−βΔ)`` (softplus' = sigmoid), and
    ``∂Δ/∂log π(y⁺) = 1``, ``∂Δ/∂log π(y⁻) = −1``, so with ``w_i`` the cotangent of ℓ_i::

        ∂ℓ_i/∂log π(y⁺_i) = σ(−βΔ_i)·(−β) = −β σ(−βΔ_i)
        ∂ℓ_i/∂log π(y⁻_i) = σ(−βΔ_i)·(+β) = +β σ(−βΔ_i)
        ḡ⁺_i = −w_i β σ(−βΔ_i),   ḡ⁻_i = −ḡ⁺_i

    The reference model is frozen (its log-probabilities are constants), so only the
    policy's two inputs are differentiable. The weight σ(−βΔ) is large on pairs the implicit
    reward still ranks wrongly and vanishes on pairs it already separates.

    Not pinned: β. The paper's text consulted here does not state the β of its per-step DPO
    runs, and the authors' repository (ars22/scaling-LLM-math-synthetic-data) holds only a
    README; DPO's common default 0.1 is another paper's choice, so ``beta`` is a required
    argument (no invented default). The pair construction (which negatives, how many per
    question) happens upstream and is not part of this op.

    Args:
        policy_chosen_logps: log π(y⁺) (B,), float32 or float64, ≤ 0 (checked).
        policy_rejected_logps: log π(y⁻) (B,), ≤ 0.
        reference_chosen_logps: log π_ref(y⁺) (B,), ≤ 0; a constant (no gradient).
        reference_rejected_logps: log π_ref(y⁻) (B,), ≤ 0; a constant.
        beta: β > 0, the inverse temperature of the implicit reward (required, see above).
        reduction: "mean" (default: the DPO objective is an expectation over the pairs,
            Rafailov et al. Eq. 7), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the input dtype; ℓ > 0, and
        ℓ = log 2 where Δ = 0 (in particular at π = π_ref).

    Reference: Setlur, Garg, Geng, Garg, Smith, Kumar, *RL on Incorrect Synthetic Data Scales
    the Efficiency of LLM Math Reasoning by Eight-Fold*, NeurIPS 2024, arXiv:2406.14532
    (per-step DPO on negatives cut at the critical step); the loss is DPO's, Rafailov et al.,
    *Direct Preference Optimization*, arXiv:2305.18290, Eq. 7. No official code.

    >>> import numpy as np, refimpl
    >>> chosen, rejected = np.array([-1.0]), np.array([-3.0])  # policy
    >>> reference = np.array([-2.0])  # both sequences under π_ref: Δ = 1 − (−1) = 2
    >>> loss = refimpl.losses.per_step_dpo_loss(chosen, rejected, reference, reference, beta=0.5)
    >>> round(float(loss), 7)  # softplus(−1) = log(1 + e⁻¹)
    0.3132617
    """
    dtype = policy_chosen_logps.dtype.type
    chosen_log_ratio = policy_chosen_logps - reference_chosen_logps
    rejected_log_ratio = policy_rejected_logps - reference_rejected_logps
    margin = chosen_log_ratio - rejected_log_ratio  # Δ
    argument = -dtype(beta) * margin  # u = −βΔ
    per_pair = softplus(argument)  # −log σ(βΔ)
    weight = sigmoid(argument)  # σ(−βΔ) = ∂ℓ/∂u
    return reduce_rows(per_pair, reduction, policy_chosen_logps.dtype), (weight, beta, reduction)


@per_step_dpo_loss.defvjp
def per_step_dpo_loss_backward(residuals, g_loss):
    weight, beta, reduction = residuals
    dtype = weight.dtype
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, weight.shape[0])
    g_chosen = (-dtype.type(beta) * w * weight).astype(dtype, copy=False)  # −wβσ(−βΔ)
    return g_chosen, -g_chosen


def _check_advantage_weighted(arguments) -> None:
    _refuse_positive_log_probs(arguments, ("log_probs",))


@op(
    inputs={
        "log_probs": FloatArray("N"),
        "advantages": FloatArray("N"),
        "reduction": OneOf("sum", "mean", "none"),
    },
    outputs=("loss",),
    differentiable=("log_probs",),
    check=_check_advantage_weighted,
)
def advantage_weighted_loss(log_probs, advantages, *, reduction="sum"):
    r"""Advantage-weighted policy loss over the steps of reasoning traces: −Σ_i Â_i log π(a_i|s_i).

    The paper's reading of per-step DPO: training on negatives cut at the critical step is
    advantage-weighted RL, where each step's log-likelihood is weighted by its advantage —
    raised when the step increased the chance of reaching a correct answer (Â > 0), lowered
    when it derailed the solution (Â < 0), left alone when it changed nothing. Plain
    imitation of positive data is the special case Â = 1 on every step of correct traces
    only, which is why it cannot unlearn a spurious step. The advantages are constants (the
    Monte-Carlo estimates of ``mc_step_advantages``, computed before the update).

    Forward, with ``a_i`` a step (its tokens), ``s_i`` the prefix before it (the question and
    the previous steps) and ``log π(a_i|s_i)`` the summed token log-probabilities of the step::

        ℓ_i = −Â_i · log π(a_i|s_i)
        L   = Σ_i ℓ_i   (reduction="sum": a sum over the steps, as written; "mean"; "none")

    Backward. L is linear in each log π, so ``∂ℓ_i/∂log π(a_i|s_i) = −Â_i`` and, with ``w_i``
    the cotangent of ℓ_i (1 for "sum", 1/N for "mean")::

        ḡ_i = −w_i Â_i

    The gradient with respect to the policy's parameters θ then follows by the chain rule
    through ``∇_θ log π`` (outside this op): ``−Σ_i Â_i ∇_θ log π(a_i|s_i)``, the policy
    gradient with advantage Â. No gradient flows into the advantages (they are estimates
    treated as constants).

    Args:
        log_probs: log π(a_i|s_i) (N,), float32 or float64, ≤ 0 (checked): one entry per
            step, over every trace of the batch.
        advantages: Â_i (N,), the steps' advantages (any real; Monte-Carlo estimates lie in
            [−1, 1]); a constant (no gradient).
        reduction: "sum" (default: ``L = −Σ_i Â_i log π(a_i|s_i)``, the paper's
            advantage-weighted objective summed over the steps of the traces), "mean" or "none".

    Returns:
        loss: a scalar, or ℓ (N,) for reduction="none", in the input dtype.

    Reference: Setlur, Garg, Geng, Garg, Smith, Kumar, *RL on Incorrect Synthetic Data Scales
    the Efficiency of LLM Math Reasoning by Eight-Fold*, NeurIPS 2024, arXiv:2406.14532
    (per-step DPO as advantage-weighted RL). No official code (the authors' repository holds
    only a README).

    >>> import numpy as np, refimpl
    >>> log_probs = np.log(np.array([0.5, 0.25, 1.0]))
    >>> advantages = np.array([0.25, -0.5, 0.75])  # the third step is certain: log 1 = 0
    >>> round(float(refimpl.losses.advantage_weighted_loss(log_probs, advantages)), 7)  # (0.25 − 1) log 2
    -0.5198604
    """
    per_step = -(advantages * log_probs)  # ℓ_i = −Â_i log π(a_i|s_i)
    return reduce_rows(per_step, reduction, log_probs.dtype), (advantages, reduction)


@advantage_weighted_loss.defvjp
def advantage_weighted_loss_backward(residuals, g_loss):
    advantages, reduction = residuals
    dtype = advantages.dtype
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, advantages.shape[0])
    return ((-w * advantages).astype(dtype, copy=False),)  # ḡ_i = −w_i Â_i
