"""AAER, abnormal adversarial examples regularization (Eliminating Catastrophic Overfitting Via
Abnormal Adversarial Examples Regularization)."""

from __future__ import annotations

import numpy as np

from ..authoring import Example, Flag, FloatArray, Paper, RealScalar, known_deviation, op

__all__ = ["PAPER", "aaer_loss"]

PAPER = Paper(
    "Eliminating Catastrophic Overfitting Via Abnormal Adversarial Examples Regularization",
    arxiv="2404.08154",
    year=2023,
)


def aaer_terms(loss_before, logits_before, loss_after, logits_after):
    """The pieces every backend shares: the AAE mask ``ℓ_before > ℓ_after``, the row variations
    ``‖o_org,i − o_i‖²`` and the differences ``o_i − o_org,i`` (in the input dtype)."""
    abnormal = loss_before > loss_after
    difference = logits_after - logits_before
    variation = (difference * difference).sum(axis=-1)
    return abnormal, difference, variation


@op(
    inputs={
        "loss_before": FloatArray("B"),
        "logits_before": FloatArray("B", "K"),
        "loss_after": FloatArray("B"),
        "logits_after": FloatArray("B", "K"),
        "lambda1": RealScalar(0),
        "lambda2": RealScalar(0),
        "lambda3": RealScalar(0),
        "detach_loss_gap": Flag(),
    },
    outputs=("loss",),
    differentiable=("loss_after", "logits_after"),
    custom_vjp="V(normal) is detached (a stop-gradient, the official `.item()`): the normal rows' logits "
    "get no cotangent although the value depends on them; with V(normal) held fixed (and the sets, "
    "piecewise constant) both cotangents are the exact derivatives",
)
def aaer_loss(
    loss_before,
    logits_before,
    loss_after,
    logits_after,
    *,
    lambda1=1.0,
    lambda2=4.0,
    lambda3=1.5,
    detach_loss_gap=False,
):
    r"""AAER: FGSM adversarial training plus a penalty on the abnormal adversarial examples.

    Single-step (FGSM) adversarial training collapses ("catastrophic overfitting") when the
    network's loss surface bends so that the FGSM step *lowers* the loss. The paper calls such
    points abnormal adversarial examples (AAEs), observes that their number and their output
    variation grow sharply before the collapse, and penalizes both: the loss decrease of the
    AAEs and how much more their logits move than those of the normal examples.

    Inputs are the two forward passes of one FGSM step: per-sample cross-entropies and logits at
    the random start ``x + δ_0`` (``loss_before``, ``logits_before`` = o_org: constants, detached
    in the official code) and at the FGSM point ``x + δ`` (``loss_after``, ``logits_after`` = o:
    differentiable).

    Forward::

        AAE    = {i : ℓ_before,i > ℓ_after,i}           normal = the rest; n_A = |AAE|
        V(S)   = (1/|S|) Σ_{i∈S} ‖o_org,i − o_i‖²        (squared L2 over classes, mean over S)
        gap    = (1/n_A) Σ_{i∈AAE} (ℓ_before,i − ℓ_after,i)
        L      = mean_i ℓ_after,i + (λ1 n_A/B)·[λ2 gap + λ3 max(V(AAE) − sg[V(normal)], 0)]

    The bracket is added only when both sets are non-empty (otherwise L is the plain mean CE).
    At ``V(AAE) = V(normal)`` the gate is taken as active (the official Python ``max(t, 0)``
    returns t on a tie: value 0, gradient of t).

    Backward. The sets, and V(normal), are constants (sg: the official ``.item()``). With
    ``λ1 n_A/B · λ2/n_A = λ1λ2/B`` and ``λ1 n_A/B · λ3 V(AAE) = (λ1λ3/B) Σ_{i∈AAE} ‖o_org,i − o_i‖²``,
    for the scalar cotangent w::

        ℓ̄_after,i = w (1/B − (λ1λ2/B)·1[i ∈ AAE])                  (both sets non-empty)
        ō_i       = w (2λ1λ3/B)(o_i − o_org,i)·1[i ∈ AAE]           (gate active; 0 otherwise)

    With ``detach_loss_gap=True`` the λ2 term contributes no gradient (the official code
    builds it from ``loss_after = loss.detach()``): ``ℓ̄_after,i = w/B``.

    Args:
        loss_before: ℓ_before (B,), per-sample CE at x + δ_0.
        logits_before: o_org (B, K), logits at x + δ_0.
        loss_after: ℓ_after (B,), per-sample CE at the FGSM point.
        logits_after: o (B, K), logits at the FGSM point.
        lambda1, lambda2, lambda3: the weights λ1 = 1.0, λ2 = 4.0, λ3 = 1.5 (official
            training script's argument defaults ``--lamda1/2/3``). Context there: ε = 8/255, FGSM
            step 1.0·ε with a warm-up over 5 epochs, δ_0 ~ U(−2ε, 2ε) without projection
            (``--clamp 0``), cyclic learning rate up to 0.05.
        detach_loss_gap: reproduce the official code, where the λ2 term is a constant (default
            False: the paper's objective, differentiated).

    Returns:
        loss: the scalar L, in the dtype of the inputs.

    Reference: Lin, Yu, Liu, *Eliminating Catastrophic Overfitting Via Abnormal Adversarial
    Examples Regularization*, NeurIPS 2023, arXiv:2404.08154, Section 3.3 (the AAER objective);
    the official CIFAR-10 training script (NeurIPS 2023 release, based on
    locuslab/fast_adversarial; ``--out-dir train_aaer_output``), its training loop and
    ``utils.l2_square`` (``((x − y)²).sum(1).mean(0)``).

    >>> import numpy as np, refimpl
    >>> loss = refimpl.regularizers.aaer_loss(
    ...     np.array([1.0, 0.5]), np.zeros((2, 1)), np.array([0.5, 1.0]), np.array([[1.0], [0.0]]))
    >>> float(loss)  # 0.75 + (1/2)·(4·0.5 + 1.5·max(1 − 0, 0))
    2.5
    """
    dtype = loss_after.dtype
    batch = loss_after.shape[0]
    abnormal, difference, variation = aaer_terms(loss_before, logits_before, loss_after, logits_after)
    abnormal_count = int(abnormal.sum())
    normal_count = batch - abnormal_count
    loss = loss_after.mean(dtype=np.float64)
    active = abnormal_count > 0 and normal_count > 0
    gated = False
    if active:
        gap = (loss_before - loss_after)[abnormal].sum(dtype=np.float64) / abnormal_count
        variation_abnormal = variation[abnormal].sum(dtype=np.float64) / abnormal_count
        variation_normal = variation[~abnormal].sum(dtype=np.float64) / normal_count  # sg[·]
        excess = variation_abnormal - variation_normal
        gated = bool(excess >= 0)  # official max(t, 0) keeps t on a tie
        weight = lambda1 * abnormal_count / batch
        loss = loss + weight * (lambda2 * gap + lambda3 * max(excess, 0.0))
    residuals = (abnormal, difference, active, gated, batch, lambda1, lambda2, lambda3, detach_loss_gap)
    return np.asarray(loss, dtype=dtype), residuals


@aaer_loss.defvjp
def aaer_loss_backward(residuals, g_loss):
    abnormal, difference, active, gated, batch, lambda1, lambda2, lambda3, detach_loss_gap = residuals
    dtype = difference.dtype
    w = float(np.asarray(g_loss))
    g_loss_after = np.full(batch, w / batch, dtype=np.float64)
    if active and not detach_loss_gap:
        g_loss_after -= (w * lambda1 * lambda2 / batch) * abnormal  # −(λ1λ2/B) on the AAEs
    g_logits_after = np.zeros(difference.shape, dtype=dtype)
    if active and gated:
        scale = dtype.type(2 * w * lambda1 * lambda3 / batch)
        g_logits_after[abnormal] = scale * difference[abnormal]  # (2λ1λ3/B)(o_i − o_org,i)
    return g_loss_after.astype(dtype), g_logits_after


known_deviation(
    aaer_loss,
    name="aaer-loss-gap-detached",
    source="AAER official CIFAR-10 training script (NeurIPS 2023 release, based on "
    "locuslab/fast_adversarial; out-dir train_aaer_output), training loop: `loss_after = loss.detach()`, "
    "`abnormal_ce = abnormal_example * (loss_before - loss_after)`",
    official="builds the λ2 term from the detached per-sample losses, so it is a constant: it changes the "
    "reported loss but gives no gradient; only the λ3 variation term regularizes",
    paper="the λ2 term λ1λ2/B·Σ_{AAE}(ℓ_before − ℓ_after) is part of the objective and pushes ℓ_after of "
    "the AAEs up: ∂L/∂ℓ_after,i = 1/B − λ1λ2/B on the AAEs",
    example=Example(
        args=(np.array([1.0, 0.5]), np.zeros((2, 1)), np.array([0.5, 1.0]), np.array([[1.0], [0.0]])),
        official={"loss": 2.5, "cotangent of 'loss_after'": [0.5, 0.5]},
        reference={"loss": 2.5, "cotangent of 'loss_after'": [-1.5, 0.5]},
        note="row 0 is the AAE: 1/B − λ1λ2/B = 0.5 − 2",
    ),
    flag={"detach_loss_gap": True},
)
