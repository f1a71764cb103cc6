"""LDR-KL and ALDR-KL losses (Label Distributionally Robust Losses for Multi-class Classification)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    op,
    reduce_rows,
    row_weights,
    sigmoid,
    softmax,
    softplus,
)

__all__ = [
    "ALDR_PROBABILITY_FLOOR",
    "NORMALIZATIONS",
    "PAPER",
    "aldr_kl_loss",
    "aldr_lambda_update",
    "ldr_kl_loss",
    "log_mean_exp",
    "normalize_logits",
    "normalize_logits_backward",
]

PAPER = Paper(
    "Label Distributionally Robust Losses for Multi-class Classification: Consistency, Robustness "
    "and Adaptivity",
    arxiv="2112.14869",
    year=2023,
    code="Optimization-AI/ICML2023_LDR",
)

NORMALIZATIONS = ("none", "softplus_mean", "l1")
ALDR_PROBABILITY_FLOOR = 1e-5  # the official code adds 1e-5 to p before the KL ("prevent invalid log")


# -- shared pieces ----------------------------------------------------------------------
def normalize_logits(z: np.ndarray, normalize: str) -> tuple[np.ndarray, tuple]:
    """The official logit normalization ``z → z̃`` (row-wise) and what its backward needs.

    * ``"none"``: ``z̃ = z`` (the paper's math);
    * ``"softplus_mean"`` (LDR official code): ``u = softplus(z)``, ``z̃ = u / mean_k u_k``;
    * ``"l1"`` (ALDR official code): ``z̃ = K z / ‖z‖₁``.

    ALDR's official "softplus, then l1" (used on CIFAR-100) equals ``"softplus_mean"``: for
    ``u > 0``, ``‖u‖₁/K = mean_k u_k``.
    """
    if normalize == "none":
        return z, (normalize,)
    num_classes = z.shape[-1]
    if normalize == "softplus_mean":
        u = softplus(z)
        m = u.mean(axis=-1, keepdims=True)
        return u / m, (normalize, z, u, m)
    norm = np.abs(z).sum(axis=-1, keepdims=True)
    return z.dtype.type(num_classes) * z / norm, (normalize, z, norm)


def normalize_logits_backward(cache: tuple, g_z_tilde: np.ndarray) -> np.ndarray:
    """VJP of :func:`normalize_logits` (derivations in ``ldr_kl_loss``'s docstring)."""
    normalize = cache[0]
    if normalize == "none":
        return g_z_tilde
    if normalize == "softplus_mean":
        _, z, u, m = cache
        num_classes = z.shape[-1]
        # (ḡ − ⟨ḡ, u⟩/(K m))/m, not ḡ/m − ⟨ḡ, u⟩/(K m²): m² underflows in float32 for
        # rows of very negative logits (softplus ~1e-25) while m itself is a normal number
        g_u = (g_z_tilde - (g_z_tilde * u).sum(axis=-1, keepdims=True) / (num_classes * m)) / m
        return g_u * sigmoid(z)
    _, z, norm = cache
    num_classes = z.dtype.type(z.shape[-1])
    g_dot_z = (g_z_tilde * z).sum(axis=-1, keepdims=True)
    return num_classes / norm * (g_z_tilde - np.sign(z) * g_dot_z / norm)


def log_mean_exp(a: np.ndarray) -> np.ndarray:
    """``log(mean_k exp(a_k)) = LSE(a) − log K`` over the last axis, without cancellation.

    Written as ``m + log1p(mean_k expm1(a_k − m))`` with ``m = max_k a_k``: ``exp`` never
    sees a positive argument, and for nearly equal ``a_k`` (large λ) the result is not the
    difference of two numbers close to ``log K`` (``LSE(a) − log K`` keeps ~1 digit in
    float32 at λ = 1e4).
    """
    m = a.max(axis=-1, keepdims=True)
    return (m + np.log1p(np.expm1(a - m).mean(axis=-1, keepdims=True)))[..., 0]


def _margins(z_tilde: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """``b_k = c·1[k≠y] + z̃_k − z̃_y`` (so ``b_y = 0``)."""
    rows = np.arange(z_tilde.shape[0])
    b = z_tilde - z_tilde[rows, y][:, None] + z_tilde.dtype.type(c)
    b[rows, y] = 0
    return b


def _check_normalization(arguments) -> None:
    z, normalize = arguments["z"], arguments["normalize"]
    xp = array_namespace(z)
    if normalize == "l1":
        norm = xp.sum(xp.abs(z), axis=-1)
        if bool(xp.any(norm == 0)):
            row = int(xp.argmax(norm == 0))
            raise ArgumentError(
                "z",
                "rows with a nonzero logit for normalize='l1' (z̃ = K z/‖z‖₁ divides by ‖z‖₁)",
                f"an all-zero row {row}",
            )
    elif normalize == "softplus_mean":
        u = xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))
        if bool(xp.any(xp.max(u, axis=-1) == 0)):
            raise ArgumentError(
                "z",
                "rows whose softplus does not underflow to 0 everywhere for normalize='softplus_mean' "
                "(every logit below ≈ −745 in float64, ≈ −104 in float32)",
                "a row with mean softplus(z) = 0",
            )


# -- LDR-KL -----------------------------------------------------------------------------
@op(
    inputs={
        "z": FloatArray("B", "K"),
        "y": IntArray("B", low=0, high="K"),
        "c": RealScalar(0),
        "lam": RealScalar(0, low_open=True),
        "normalize": OneOf(*NORMALIZATIONS),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z",),
    check=_check_normalization,
)
def ldr_kl_loss(z, y, *, c=0.1, lam=10.0, normalize="none", reduction="mean"):
    r"""LDR-KL: the worst case, over label distributions near uniform, of the margin violations.

    Instead of trusting the given label, the loss takes the worst label distribution p over
    the classes, penalised by its KL divergence from uniform: λ → 0 is the Crammer–Singer
    multi-class hinge (all weight on the worst class), λ → ∞ the mean violation
    (Weston–Watkins-like), and in between a smooth, consistent, noise-robust loss.

    Forward, per row (logits z, label y, K classes)::

        z̃   = normalize(z)                              (see below; "none": z̃ = z)
        b_k = c·1[k≠y] + z̃_k − z̃_y                      (b_y = 0)
        ℓ   = max_{p∈Δ} Σ_k p_k b_k − λ KL(p ‖ 1/K)
            = λ (LSE(b/λ) − log K) = λ log mean_k exp(b_k/λ)
        L   = mean_i ℓ_i   (reduction="mean"; "sum" sums; "none" returns ℓ)

    The maximizer is ``p* = softmax(b/λ)`` (Gibbs variational principle). ``log mean exp``
    is evaluated as ``m + log1p(mean expm1(b/λ − m))``, ``m = max b/λ`` (see
    :func:`log_mean_exp`): no overflow, no cancellation against ``log K``. Identities:
    ``c = 0, λ = 1, normalize="none"`` gives ``CE(z, y) − log K``; λ → 0 gives
    ``max_k b_k``; λ → ∞ gives ``mean_k b_k``.

    Logit normalization (the official code's, part of its recipe): ``"softplus_mean"``
    (LDR official): ``u = softplus(z)``, ``m = mean_k u_k``, ``z̃ = u/m``; ``"l1"`` (ALDR
    official): ``z̃ = K z/‖z‖₁`` (an all-zero row is refused). ALDR's CIFAR-100 recipe,
    softplus then l1, is ``"softplus_mean"`` (``‖u‖₁/K = mean u`` for ``u > 0``).

    Backward. Let ``q = softmax(b/λ)``. ``∂ℓ/∂b_k = λ·q_k/λ = q_k``; ``b_k`` depends on
    ``z̃_j`` through ``δ_kj − δ_jy`` (and ``b_y ≡ 0``), so::

        ∂ℓ/∂z̃_j = q_j − δ_jy Σ_k q_k = q_j − δ_jy      i.e. ḡ_z̃ = w_i (q − e_y)

    with ``w_i`` the row's cotangent (``ḡ/B`` mean, ``ḡ`` sum, ``ḡ_i`` none). Then through
    the normalization, for a cotangent ``g`` on z̃:

    * softplus_mean: ``z̃_k = u_k/m``, ``∂z̃_k/∂u_j = δ_kj/m − u_k/(K m²)``, so
      ``g_u = g/m − (Σ_k g_k u_k)/(K m²)·1``; ``softplus' = σ``: ``g_z = g_u ⊙ σ(z)``;
    * l1: ``n = ‖z‖₁``, ``∂n/∂z_j = sign(z_j)``, ``∂z̃_k/∂z_j = K(δ_kj/n − z_k sign(z_j)/n²)``,
      so ``g_z = (K/n)(g − sign(z)⟨g, z⟩/n)`` (not differentiable where some ``z_j = 0``).

    Args:
        z: logits (B, K), float32 or float64.
        y: labels (B,), integers in [0, K).
        c: margin c ≥ 0 (default 0.1, the official ``--margin``).
        lam: λ > 0 (default 10, the official ``parameter_set = [10]``).
        normalize: "none" (default, the paper's math), "softplus_mean" (the official LDR
            code) or "l1" (the official ALDR code).
        reduction: "mean" (default), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the dtype of ``z``.

    Reference: Zhu, Ying, Yang, *Label Distributionally Robust Losses for Multi-class
    Classification: Consistency, Robustness and Adaptivity*, ICML 2023, arXiv:2112.14869;
    official code Optimization-AI/ICML2023_LDR (``LDRLoss_V1``).

    >>> import numpy as np, refimpl
    >>> z, y = np.array([[2.0, 0.0, -1.0]]), np.array([0])
    >>> round(float(refimpl.losses.ldr_kl_loss(z, y, c=0.0, lam=1.0)), 7)  # CE − log 3
    -0.9287663
    """
    dtype = z.dtype
    z_tilde, cache = normalize_logits(z, normalize)
    b = _margins(z_tilde, y, c)
    a = b / dtype.type(lam)
    per_row = dtype.type(lam) * log_mean_exp(a)
    return reduce_rows(per_row, reduction, dtype), (softmax(a), y, cache, reduction)


@ldr_kl_loss.defvjp
def ldr_kl_loss_backward(residuals, g_loss):
    q, y, cache, reduction = residuals
    batch = q.shape[0]
    g_z_tilde = q.copy()
    g_z_tilde[np.arange(batch), y] -= 1
    g_z_tilde *= row_weights(np.asarray(g_loss).astype(q.dtype, copy=False), reduction, batch)[:, None]
    return (normalize_logits_backward(cache, g_z_tilde).astype(q.dtype, copy=False),)


# -- ALDR-KL ----------------------------------------------------------------------------
def _check_aldr(arguments) -> None:
    z, lam, ids = arguments["z"], arguments["lam"], arguments["ids"]
    if z.shape[-1] < 2:
        raise ArgumentError("z", "K >= 2 classes (the λ update divides by log K)", f"shape {tuple(z.shape)}")
    xp = array_namespace(lam)
    used = lam[ids]
    if not bool(xp.all(used > 0)):
        raise ArgumentError("lam", "λ_i > 0 at the batch's ids", f"min λ = {float(xp.min(used))!r}")
    _check_normalization(arguments)


def _check_aldr_update(arguments) -> None:
    _check_aldr(arguments)
    ids = arguments["ids"]
    xp = array_namespace(ids)
    if xp.unique(ids).shape[0] != ids.shape[0]:
        raise ArgumentError("ids", "distinct sample ids (each λ_i is written once)", "a repeated id")


ALDR_INPUTS = {
    "z": FloatArray("B", "K"),
    "y": IntArray("B", low=0, high="K"),
    "lam": FloatArray("N"),
    "ids": IntArray("B", low=0, high="N"),
    "c": RealScalar(0),
    "lam0": RealScalar(0, low_open=True),
    "alpha": RealScalar(1, low_open=True),
    "normalize": OneOf(*NORMALIZATIONS),
}


@op(
    inputs={**ALDR_INPUTS, "reduction": OneOf("mean", "sum", "none")},
    outputs=("loss",),
    differentiable=("z",),
    check=_check_aldr,
)
def aldr_kl_loss(z, y, lam, ids, *, c=0.1, lam0=10.0, alpha=2.0, normalize="none", reduction="mean"):
    r"""ALDR-KL: LDR-KL with a per-example λ_i, adapted to how confident the model is on it.

    Each training example keeps its own λ_i (a detached state, updated by
    ``aldr_lambda_update``): uncertain, possibly mislabeled examples get a smaller λ_i
    (closer to the hinge, more robust), the rest stay near λ0.

    Forward, per row i (``b`` as in ``ldr_kl_loss``, ``λ_i = lam[ids_i]``)::

        b_k = c·1[k≠y] + z̃_k − z̃_y
        ℓ_i = λ_i (LSE(b/λ_i) − log K) − (α log K / (2 λ0)) (λ_i − λ0)²
        L   = mean_i ℓ_i   (reduction="mean"; "sum"; "none")

    The official code updates λ first and then evaluates the loss with the NEW λ (its
    ``forward`` writes ``self.Lambda[ids]`` before using it): call
    ``lam = aldr_lambda_update(z, y, lam, ids, ...)`` and then this op with that ``lam``.

    Backward. λ_i is a constant (detached), so the penalty has no gradient and, as in
    ``ldr_kl_loss``, ``∂ℓ_i/∂z̃ = softmax(b/λ_i) − e_y``; then the normalization's VJP
    (``ldr_kl_loss``'s docstring). Only z gets a cotangent (not ``lam``).

    Args:
        z: logits (B, K), K ≥ 2.
        y: labels (B,).
        lam: the per-example state λ (N,), same dtype as z; ``lam[ids] > 0``. Initialise
            it to λ0 (the official ``torch.tensor([Lambda] * N)``).
        ids: the batch's sample indices (B,) into ``lam``.
        c: margin (default 0.1). lam0: λ0 > 0 (default 10). alpha: α > 1 (default 2, the
            official ``--alpha``). normalize: as in ``ldr_kl_loss`` (official ALDR: "l1";
            "softplus_mean" on CIFAR-100).
        reduction: "mean" (default), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the dtype of ``z``.

    Reference: arXiv:2112.14869; official ``ALDRLoss_V1`` in Optimization-AI/ICML2023_LDR.

    >>> import numpy as np, refimpl
    >>> z, y, lam = np.array([[2.0, 0.0, -1.0]]), np.array([0]), np.array([10.0])
    >>> round(float(refimpl.losses.aldr_kl_loss(z, y, lam, np.array([0]))), 7)  # λ = λ0: LDR-KL
    -1.5267627
    """
    dtype = z.dtype
    num_classes = z.shape[-1]
    z_tilde, cache = normalize_logits(z, normalize)
    b = _margins(z_tilde, y, c)
    lam_rows = lam[ids][:, None]
    a = b / lam_rows
    log_k = dtype.type(math.log(num_classes))
    penalty = dtype.type(alpha) * log_k / (2 * dtype.type(lam0)) * (lam_rows[:, 0] - dtype.type(lam0)) ** 2
    per_row = lam_rows[:, 0] * log_mean_exp(a) - penalty
    return reduce_rows(per_row, reduction, dtype), (softmax(a), y, cache, reduction)


@aldr_kl_loss.defvjp
def aldr_kl_loss_backward(residuals, g_loss):
    return ldr_kl_loss_backward(residuals, g_loss)


@op(
    inputs={**ALDR_INPUTS, "update_without_margin": Flag()},
    outputs=("lam",),
    check=_check_aldr_update,
)
def aldr_lambda_update(
    z, y, lam, ids, *, c=0.1, lam0=10.0, alpha=2.0, normalize="none", update_without_margin=False
):
    r"""ALDR-KL's closed-form λ step: shrink λ_i for examples whose worst-case p is far from uniform.

    ALDR-KL maximises over (p, λ) jointly; alternating, for p fixed the optimal λ is in
    closed form. For the batch's ids::

        p_i  = softmax(b_i/λ_i^old)                       (the maximizing label distribution)
        p_i ← (p_i + 1e−5) / Σ_k (p_ik + 1e−5)            (the official floor before the log)
        KL_i = Σ_k p_ik log(K p_ik)                        (KL(p_i ‖ uniform))
        λ_i  ← λ0 − λ0 · KL_i / (α log K)

    Every other entry of ``lam`` is returned unchanged. Since ``0 ≤ KL ≤ log K``, the new λ_i
    lies in ``[λ0(1 − 1/α), λ0]``; α ≤ 1 could make it ≤ 0 and is refused.

    Official-code variant: ``ALDRLoss_V1`` computes ``p = softmax(z̃/λ_old)``, i.e. without
    the margin term ``c·1[k≠y]`` (the ``− z̃_y`` shift does not change a softmax).
    ``update_without_margin=True`` reproduces that; the default uses the margins ``b`` of the
    loss, whose softmax is the maximizer of the inner problem (the two agree at c = 0).

    Args:
        z, y, lam, ids, c, lam0, alpha, normalize: as in ``aldr_kl_loss``; ``ids`` must be
            distinct (each λ_i is written once).
        update_without_margin: the official code's margin-free softmax (default False).

    Returns:
        lam: the new state (N,), same dtype; no gradient (λ is a detached state).

    Reference: arXiv:2112.14869; official ``ALDRLoss_V1.forward`` in Optimization-AI/ICML2023_LDR.

    >>> import numpy as np, refimpl
    >>> z, y = np.array([[0.0, 0.0, 0.0]]), np.array([1])
    >>> refimpl.losses.aldr_lambda_update(z, y, np.full(2, 10.0), np.array([1]), c=0.0)  # uniform p: KL = 0
    array([10., 10.])
    """
    dtype = z.dtype
    num_classes = z.shape[-1]
    z_tilde, _ = normalize_logits(z, normalize)
    b = z_tilde if update_without_margin else _margins(z_tilde, y, c)
    p = softmax(b / lam[ids][:, None]) + dtype.type(ALDR_PROBABILITY_FLOOR)
    p = p / p.sum(axis=-1, keepdims=True)
    kl = (p * np.log(dtype.type(num_classes) * p)).sum(axis=-1)
    lam0_ = dtype.type(lam0)
    new_lam = lam.copy()
    new_lam[ids] = lam0_ - lam0_ * kl / (dtype.type(alpha) * dtype.type(math.log(num_classes)))
    return new_lam, None
