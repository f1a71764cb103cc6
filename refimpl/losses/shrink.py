"""ShrinkMatch's shrunk-class-space consistency loss (Shrinking Class Space for Enhanced Certainty in SSL)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    FloatArray,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    op,
    reduce_rows,
    row_weights,
)

__all__ = ["PAPER", "shrink_loss"]

PAPER = Paper(
    "Shrinking Class Space for Enhanced Certainty in Semi-Supervised Learning",
    arxiv="2308.06777",
    year=2023,
    code="LiheYoung/ShrinkMatch",
)


def _check(arguments) -> None:
    p = arguments["p"]
    xp = array_namespace(p)
    if bool(xp.any(p < 0)):
        row = int(xp.argmax(xp.any(p < 0, axis=-1)))
        raise ArgumentError(
            "p", "probabilities p >= 0 (the weak view's softmax)", f"a negative entry in row {row}"
        )
    if p.shape[-1] and bool(xp.any(xp.max(p, axis=-1) == 0)):
        row = int(xp.argmax(xp.max(p, axis=-1) == 0))
        raise ArgumentError(
            "p",
            "rows with a positive probability (the shrunk confidence q_0/(q_0 + T_c) is 0/0 otherwise)",
            f"all zeros in row {row}",
        )


def shrunk_class_space(p, threshold):
    """The per-row selection of ShrinkMatch, a constant of the loss (``p`` carries no gradient).

    Returns ``(top, kept, weight, certain)``: the top-1 class (B,), the kept classes S as a
    boolean (B, C) mask, ``ω = max p · 1[conf_c ≥ τ]`` for uncertain rows (0 for certain rows
    and rows that never reach τ) in float64, and the certain rows ``max p ≥ τ`` (B,).
    """
    batch, num_classes = p.shape
    tau = float(p.dtype.type(threshold))  # τ rounded to p's dtype, as PyTorch's `p.ge(τ)` compares
    # descending, stable: tied probabilities keep the lowest class index first
    order = np.argsort(-p, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=-1).astype(np.float64)
    top_p = sorted_p[:, 0]
    certain = top_p >= tau
    # T_c = Σ_{r ≥ c} q_r, a running sum from the smallest probability up (float64)
    tail = np.cumsum(sorted_p[:, ::-1], axis=-1)[:, ::-1]
    cut = np.full(batch, max(num_classes - 1, 0))
    reached = np.zeros(batch, dtype=bool)
    if num_classes >= 3:  # c = 2, …, C − 1 (empty for C = 2: no loss)
        confidence = top_p[:, None] / (top_p[:, None] + tail[:, 2:])  # conf_c, increasing in c
        passes = confidence >= tau
        reached = passes.any(axis=-1)
        cut = np.where(reached, 2 + passes.argmax(axis=-1), num_classes - 1)  # first c, else C − 1
    ranks = np.arange(num_classes)[None, :]
    kept_by_rank = (ranks == 0) | (ranks >= cut[:, None])  # ranks 1..c−1 (the confusion classes) go
    kept = np.zeros((batch, num_classes), dtype=bool)
    np.put_along_axis(kept, order, kept_by_rank, axis=-1)
    weight = np.where(reached & ~certain, top_p, 0.0)
    return order[:, 0], kept, weight, certain


@op(
    inputs={
        "p": FloatArray("B", "C"),
        "z": FloatArray("B", "C"),
        "certain_ratio": RealScalar(0, 1),
        "threshold": RealScalar(0, 1, low_open=True),
        "momentum": RealScalar(0, 1),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss", "certain_ratio"),
    differentiable=("z",),
    check=_check,
)
def shrink_loss(p, z, *, certain_ratio, threshold=0.95, momentum=0.999, reduction="mean"):
    r"""ShrinkMatch's loss on uncertain samples: cross-entropy in a shrunk class space.

    FixMatch-style training discards an unlabeled sample whose weak-view confidence
    ``max p`` stays below τ. ShrinkMatch keeps it: it removes the classes that compete
    with the top-1 class (ranks 1, 2, … in p) until the top-1 class holds τ of what is left,
    then trains the strong view's auxiliary head ``z`` to predict the top-1 class among the
    remaining classes. Two reweightings: each sample by its confidence ``max p`` (principle 1)
    and the whole term by ρ, an EMA of the fraction of certain samples (principle 2).

    Forward, per row b (C classes, τ rounded to p's dtype)::

        π      = the classes sorted by p_b descending (stable: ties, lowest index first)
        q_r    = p_{b,π_r},  certain_b = 1[q_0 ≥ τ]          (certain rows contribute 0)
        T_c    = Σ_{r ≥ c} q_r                               (float64, summed from q_{C−1} up)
        conf_c = q_0 / (q_0 + T_c),   c = 2, …, C − 1         (increasing in c)
        c*     = the first c with conf_c ≥ τ, else C − 1      (the official loop's break)
        S_b    = {π_0} ∪ {π_r : r ≥ c*}                       (ranks 1..c*−1 removed)
        ω_b    = q_0 · 1[conf_{c*} ≥ τ] · (1 − certain_b)
        ℓ_b    = log Σ_{j∈S} exp(z_{bj} − m) − (z_{b,π_0} − m),   m = max_{j∈S} z_{bj}
        L      = (1/B) Σ_b ρ ω_b ℓ_b   (reduction="mean", the official ``/B`` over the whole
                 batch, certain rows included; "sum"; "none": ρ ω_b ℓ_b)
        ρ'     = μ ρ + (1 − μ) · (1/B) Σ_b certain_b         (the second output)

    ``m`` is subtracted before ``exp`` (no overflow), and ``ℓ`` keeps ``z_{π_0} − m``
    apart from the log of the sum, so a large logit does not round the loss away. C = 2
    (or 1) leaves no class to remove: the loss is 0. The selection runs in float64 on the
    probabilities so that every backend takes the same branch (a float32 tail sum can move
    ``conf_c`` across τ by its rounding).

    Backward. p, τ, ρ and ω are constants (the official code detaches the pseudo label),
    and S depends on p only, so only ``ℓ_b`` depends on z. With ``σ_S(z_b)_j = exp(z_{bj} −
    LSE_S(z_b))`` for j ∈ S (0 outside S)::

        ∂LSE_S/∂z_{bj} = σ_S(z_b)_j,   ∂z_{b,π_0}/∂z_{bj} = δ_{j,π_0}
        ∂ℓ_b/∂z_{bj}   = σ_S(z_b)_j − δ_{j,π_0}      (0 for j ∉ S)
        z̄_{bj}         = w_b ρ ω_b (σ_S(z_b)_j − δ_{j,π_0})

    with ``w_b`` the row's cotangent (L̄/B for "mean"). The second output ρ' does not depend
    on z: its cotangent is dropped. Each row's gradient sums to 0 (shift invariance of z_b).

    Defaults: τ = 0.95 (CIFAR/shrinkmatch.py, ``--threshold``; the paper's "pre-defined
    threshold, e.g. 0.95"); μ = 0.999 (CIFAR/shrinkmatch.py ``train``:
    ``certain_ratio_ema * 0.999 + mask.mean() * 0.001``; STL10-SVHN ``ema_decay = 0.999``).
    ρ is state and has no default. The official loop starts ρ at the first batch's certain
    fraction (``None`` → ``mask.mean()``; CIFAR restarts it every epoch) — pass
    ``momentum=0`` to get that fraction — and updates ρ *before* weighting the loss by it:
    to reproduce that order, take ρ' from one call and pass it as ``certain_ratio`` to the
    call whose loss you use.

    Official code (CIFAR/shrinkmatch.py, ``shrink_loss`` and ``train``) and its variant
    (STL10-SVHN/models/shrinkmatch/shrinkmatch_utils.py, ``consistency_loss_with_shrink``)
    compute the same loss from softmax probabilities; the STL10-SVHN variant sorts and
    computes ``conf_c`` from the weak logits before distribution alignment, which differs
    only when the caller aligns p. ``torch.topk`` does not pin its tie order; this op does.

    Args:
        p: weak-view probabilities (B, C) (softmax, possibly distribution-aligned), entries
            ≥ 0 with a positive entry per row; constants (no gradient). Not renormalized.
        z: strong-view logits of the auxiliary head (B, C), same dtype.
        certain_ratio: ρ ∈ [0, 1], the EMA of the certain fraction (required: state).
        threshold: τ ∈ (0, 1] (default 0.95).
        momentum: μ ∈ [0, 1] of the EMA update (default 0.999).
        reduction: "mean" (default, official), "sum" or "none".

    Returns:
        loss: a scalar, or (B,) for reduction="none", in the dtype of z.
        certain_ratio: ρ' (0-d), the updated EMA, in the dtype of z.

    Reference: Yang, Zhao, Qi, Qiao, Shi, Zhao, *Shrinking Class Space for Enhanced
    Certainty in Semi-Supervised Learning*, ICCV 2023, arXiv:2308.06777, Sec. 3;
    code LiheYoung/ShrinkMatch (CIFAR/shrinkmatch.py, ``shrink_loss``).

    >>> import numpy as np, refimpl
    >>> p = np.array([[0.5, 0.4, 0.1]])  # uncertain; conf_2 = 0.5/0.6 < 0.9: never reached
    >>> loss, ratio = refimpl.losses.shrink_loss(p, np.zeros((1, 3)), certain_ratio=1.0, threshold=0.9)
    >>> float(loss), float(ratio)  # ρ' = 0.999·1 + 0.001·0
    (0.0, 0.999)
    >>> p = np.array([[0.6, 0.3, 0.1]])  # conf_2 = 0.6/0.7 ≥ 0.8: S = {0, 2}; ω = 0.6
    >>> loss, _ = refimpl.losses.shrink_loss(p, np.zeros((1, 3)), certain_ratio=0.5, threshold=0.8)
    >>> round(float(loss), 7)  # ρ ω log 2 = 0.5 · 0.6 · log 2
    0.2079442
    """
    dtype = z.dtype
    batch = z.shape[0]
    top, kept, weight, certain = shrunk_class_space(p, threshold)
    rows = np.arange(batch)
    # cross-entropy over S only: the removed classes are −inf, the row max of S is subtracted
    masked = np.where(kept, z, dtype.type(-np.inf))
    m = masked.max(axis=-1, keepdims=True)
    shifted = masked - m  # ≤ 0 on S, −inf off S: exp cannot overflow
    exponentials = np.exp(shifted)
    total = exponentials.sum(axis=-1)
    per_row_ce = np.log(total) - shifted[rows, top]
    factor = (dtype.type(certain_ratio) * weight.astype(dtype)).astype(dtype)  # ρ ω_b
    per_row = factor * per_row_ce
    ratio = momentum * certain_ratio + (1.0 - momentum) * float(certain.mean()) if batch else certain_ratio
    probabilities = exponentials / total[:, None]  # σ_S(z_b), 0 outside S
    residuals = (probabilities, top, factor, reduction)
    return (reduce_rows(per_row, reduction, dtype), np.asarray(ratio, dtype=dtype)), residuals


@shrink_loss.defvjp
def shrink_loss_backward(residuals, cotangents):
    probabilities, top, factor, reduction = residuals
    g_loss, _ = cotangents  # ρ' does not depend on z
    dtype = probabilities.dtype
    batch = probabilities.shape[0]
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, batch)
    g_ce = probabilities.copy()  # ∂ℓ_b/∂z_b = σ_S(z_b) − e_{π_0}
    g_ce[np.arange(batch), top] -= 1
    g_z = (w * factor)[:, None] * g_ce
    return (g_z.astype(dtype, copy=False),)
