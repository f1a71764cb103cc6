"""Early-learning regularization, ELR (Early-Learning Regularization Prevents Memorization of
Noisy Labels)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntArray,
    Paper,
    RealScalar,
    log_softmax,
    op,
    softmax,
    softmax_backward,
)

__all__ = ["CLAMP_HIGH", "CLAMP_LOW", "PAPER", "elr_loss", "elr_target_update"]

PAPER = Paper(
    "Early-Learning Regularization Prevents Memorization of Noisy Labels",
    arxiv="2007.00151",
    year=2020,
    code="shengliu66/ELR",
)

CLAMP_LOW = 1e-4  # the official code's torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)
CLAMP_HIGH = 1.0 - 1e-4


def _clamp_bounds(dtype) -> tuple:
    return dtype.type(CLAMP_LOW), dtype.type(CLAMP_HIGH)


def _check_indices(arguments) -> None:
    idx = arguments["idx"]
    if np.unique(idx).shape[0] != idx.shape[0]:
        values, counts = np.unique(idx, return_counts=True)
        raise ArgumentError(
            "idx",
            "distinct sample indices (a repeated index makes the memory update ambiguous)",
            f"index {int(values[np.argmax(counts)])} {int(counts.max())} times",
        )


@op(
    inputs={
        "z": FloatArray("B", "K"),
        "idx": IntArray("B", low=0, high="N"),
        "targets": FloatArray("N", "K"),
        "beta": RealScalar(0, 1, high_open=True),
        "clamp": Flag(),
    },
    outputs=("new_targets",),
    check=_check_indices,
)
def elr_target_update(z, idx, targets, *, beta, clamp=False):
    r"""ELR's target memory update: a per-sample moving average of the model's predictions.

    ELR keeps, for every training sample, a running average t_i of the model's softmax
    outputs. Early in training the network fits the clean labels first, so these targets
    track the clean signal; ``elr_loss`` then pulls the predictions towards them, which keeps
    the network from memorizing the noisy labels later.

    Forward, for the B samples of the batch (sample ids ``idx``)::

        p̃_i          = clamp(softmax(z_i), 1e−4, 1 − 1e−4)   (clamp=True, official code)
                     = softmax(z_i)                          (clamp=False, the paper)
        t[idx_i]     ← β·t[idx_i] + (1 − β)·sg[p̃_i] / Σ_k sg[p̃_ik]

    All other rows are unchanged. The memory starts at 0 (``numpy.zeros((N, K))``), so after
    m updates a row sums to ``1 − β^m`` (up to rounding). A new array is returned; the
    input memory is not mutated. No VJP (the targets are a stop-gradient).

    Args:
        z: logits (B, K), float32 or float64.
        idx: the batch's sample indices (B,), distinct, in [0, N).
        targets: the target memory t (N, K), same dtype as ``z``.
        beta: momentum β ∈ [0, 1) (configs: 0.7 on CIFAR-10, 0.9 on CIFAR-100).
        clamp: the official clamp of the probabilities to [1e−4, 1 − 1e−4] before
            renormalizing (default False: the paper's formula).

    Returns:
        new_targets: the updated memory (N, K), in the dtype of ``z``.

    Reference: Liu, Niles-Weed, Razavian, Fernandez-Granda, *Early-Learning Regularization
    Prevents Memorization of Noisy Labels*, NeurIPS 2020, arXiv:2007.00151; official code
    shengliu66/ELR (``elr_loss`` in ``ELR/model/loss.py``).

    >>> import numpy as np, refimpl
    >>> z, t = np.array([[0.0, np.log(3.0)]]), np.zeros((2, 2))
    >>> refimpl.regularizers.elr_target_update(z, np.array([1]), t, beta=0.5)
    array([[0.   , 0.   ],
           [0.125, 0.375]])
    """
    probs = softmax(z)
    if clamp:
        low, high = _clamp_bounds(z.dtype)
        probs = np.clip(probs, low, high)
        probs = probs / probs.sum(axis=-1, keepdims=True)
    dtype = z.dtype.type
    new_targets = targets.copy()
    new_targets[idx] = dtype(beta) * targets[idx] + dtype(1 - beta) * probs
    return new_targets, None


def _check_elr_loss(arguments) -> None:
    _check_indices(arguments)
    rows = arguments["targets"][arguments["idx"]]
    if not bool(np.all((rows >= 0) & (rows <= 1))):
        raise ArgumentError(
            "targets",
            "target rows t[idx] with entries in [0, 1] (averages of probabilities)",
            f"entries in [{rows.min()}, {rows.max()}]",
        )
    if not arguments["clamp"] and not bool(np.all((rows < 1).any(axis=-1))):
        # D = Σ_k p_k (1 − t_k) > 0 needs one t_k < 1 (every p_k > 0 for finite logits)
        raise ArgumentError(
            "targets",
            "target rows t[idx] with at least one entry below 1 (else 1 − ⟨t, p⟩ = 0)",
            "a row of ones",
        )
    if arguments["clamp"]:
        # ⟨t, p̃⟩ <= (1 − 1e−4)·Σ_k t_k < 1 keeps the log finite
        sums = rows.sum(axis=-1)
        if not bool(np.all(sums * rows.dtype.type(CLAMP_HIGH) < 1)):
            raise ArgumentError(
                "targets",
                "with clamp=True, target rows t[idx] summing to less than 1/(1 − 1e−4)",
                f"a row sum of {float(sums.max())}",
            )


@op(
    inputs={
        "z": FloatArray("B", "K"),
        "y": IntArray("B", low=0, high="K"),
        "idx": IntArray("B", low=0, high="N"),
        "targets": FloatArray("N", "K"),
        "lam": RealScalar(0),
        "clamp": Flag(),
    },
    outputs=("loss",),
    differentiable=("z",),
    check=_check_elr_loss,
)
def elr_loss(z, y, idx, targets, *, lam, clamp=False):
    r"""The ELR training loss: cross-entropy plus a pull towards the early-learning targets.

    Forward, for a batch of B samples with labels ``y_i`` and (already updated, see below)
    targets ``t_i = targets[idx_i]``::

        p_i = softmax(z_i),   p̃_i = clamp(p_i, 1e−4, 1 − 1e−4) (clamp=True) or p_i
        L   = (1/B) Σ_i CE(z_i, y_i) + λ·(1/B) Σ_i log(1 − ⟨t_i, p̃_i⟩)

    The regularizer is minimized by making ⟨t_i, p_i⟩ large, i.e. by agreeing with the
    targets. CE uses the unclamped logits (``lse(z_i) − z_i,y_i``).

    Order of the official call. The official ``elr_loss.forward`` first updates the memory
    with the current predictions and then computes the loss with the *updated* targets. Here
    the update is its own op (a stop-gradient, no VJP), so one official call is::

        targets = elr_target_update(z, idx, targets, beta=β, clamp=c)
        loss    = elr_loss(z, y, idx, targets, lam=λ, clamp=c)

    (Taking the targets as an input keeps the op's VJP the true derivative of its forward
    with t held fixed; folding the update in would make the forward depend on z through t.)

    Evaluating ``1 − ⟨t, p⟩`` (clamp=False). Since Σ_k p_k = 1::

        D = 1 − ⟨t, p⟩ = Σ_k p_k (1 − t_k)

    a sum of nonnegative terms for t ∈ [0, 1] (no cancellation), with p_k = exp(log-softmax).
    A saturated row (p ≈ e_c) with t ≈ e_c keeps its digits: D ≈ Σ_{k≠c} p_k(1 − t_k). The
    expanded form ``(1 − Σt) + Σ_k t_k(1 − p_k)`` loses ``1 − p_c`` once the logit gap
    exceeds ~37 (float64): the log-sum-exp rounds ``log(1 + ε)`` to 0, so ``1 − p_c`` and D
    become 0 and the loss −∞, where this form stays finite (until p_k underflows, gap > ~700).
    With clamp=True, ``D = 1 − ⟨t, p̃⟩`` as in the official code, at least
    ``1 − (1 − 1e−4)·Σt > 0`` (checked).

    Backward. CE: ``∂CE_i/∂z_i = p_i − Y_i`` (Y one-hot). ELR term, clamp=False: with
    ``u = 1 − t`` and ``D = ⟨p, u⟩``, ``∂ log D/∂p_k = u_k/D`` and the softmax VJP
    ``z̄ = p ⊙ (ā − ⟨ā, p⟩)`` with ``⟨u/D, p⟩ = 1`` give::

        ∂ log D_i/∂z_ic = p_ic (u_ic/D_i − 1) = −p_ic (t_ic − ⟨t_i, p_i⟩)/(1 − ⟨t_i, p_i⟩)

    (the paper's formula). clamp=True: ``∂ log D/∂p̃_k = −t_k/D``, the clamp passes the
    gradient where ``1e−4 <= p_k <= 1 − 1e−4`` (``m_k = 1``, bounds inclusive as in
    ``torch.clamp``) and stops it elsewhere, so with ``a_k = −m_k t_k/D`` the softmax VJP gives
    ``p ⊙ (a − ⟨a, p⟩)`` (p unclamped). A saturated row (every p_k outside the bounds) gets
    zero ELR gradient. With cotangent ``ḡ`` on L::

        z̄_i = (ḡ/B)·[(p_i − Y_i) + λ·g_i],   g_i the ELR gradient above

    Args:
        z: logits (B, K), float32 or float64.
        y: labels (B,), in [0, K).
        idx: the batch's sample indices (B,), distinct, in [0, N).
        targets: the target memory t (N, K) after this step's ``elr_target_update``; rows
            ``t[idx]`` must have entries in [0, 1], and at least one entry below 1 (clamp=False)
            or a sum below 1/(1 − 1e−4) (clamp=True). Memories built by ``elr_target_update``
            from 0 always qualify.
        lam: regularization weight λ ≥ 0 (configs: 3 on CIFAR-10, 7 on CIFAR-100).
        clamp: the official clamp of p to [1e−4, 1 − 1e−4] inside the regularizer
            (default False: the paper's formula).

    Returns:
        loss: L, a 0-d array in the dtype of ``z``.

    Reference: Liu et al., arXiv:2007.00151; official code shengliu66/ELR.

    >>> import numpy as np, refimpl
    >>> z, y, idx = np.array([[0.0, np.log(3.0)]]), np.array([1]), np.array([0])
    >>> t = np.array([[0.0, 0.5]])             # ⟨t, p⟩ = 0.375
    >>> round(float(refimpl.regularizers.elr_loss(z, y, idx, t, lam=1.0)), 6)   # log(4/3) + log(0.625)
    -0.182322
    """
    dtype = z.dtype.type
    batch = z.shape[0]
    rows = np.arange(batch)
    t = targets[idx]
    log_p = log_softmax(z)
    p = np.exp(log_p)
    cross_entropy = -log_p[rows, y]
    if clamp:
        low, high = _clamp_bounds(z.dtype)
        p_tilde = np.clip(p, low, high)
        denominator = 1 - (t * p_tilde).sum(axis=-1)
    else:
        denominator = (p * (1 - t)).sum(axis=-1)  # D = Σ_k p_k (1 − t_k): no cancellation
    loss = cross_entropy.mean() + dtype(lam) * np.log(denominator).mean()
    return np.asarray(loss, dtype=z.dtype), (p, y, t, denominator, lam, clamp)


@elr_loss.defvjp
def elr_loss_backward(residuals, g_loss):
    p, y, t, denominator, lam, clamp = residuals
    dtype = p.dtype.type
    batch = p.shape[0]
    d = denominator[:, None]
    if clamp:
        low, high = _clamp_bounds(p.dtype)
        passes = (p >= low) & (p <= high)  # torch.clamp's gradient mask, bounds inclusive
        a = np.where(passes, -t / d, dtype(0))
        g_elr = softmax_backward(p, a)
    else:
        g_elr = p * ((1 - t) / d - 1)  # p ⊙ (u/D − ⟨u/D, p⟩), ⟨u/D, p⟩ = 1
    g_z = dtype(lam) * g_elr + p
    g_z[np.arange(batch), y] -= 1
    g_z *= g_loss.astype(p.dtype) / dtype(batch)
    return (g_z,)
