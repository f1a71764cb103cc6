"""The adaptive multi-head contrastive loss with pair-adaptive temperatures (Adaptive Multi-head
Contrastive Learning, AMCL)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, Paper, RealScalar, op, sigmoid_and_slope

__all__ = ["PAPER", "amcl_loss"]

PAPER = Paper(
    "Adaptive Multi-head Contrastive Learning",
    arxiv="2310.05615",
    year=2024,
    code="LeiWangR/cl",
)


def _check(arguments) -> None:
    tau_min, tau_max = arguments.get("tau_min", 1e-5), arguments.get("tau_max", 2.0)
    if not tau_min < tau_max:
        raise ArgumentError("tau_max", f"tau_max > tau_min = {tau_min!r}", f"tau_max = {tau_max!r}")


def _temperature(t, tau_min, tau_max):
    """``τ = τ_min + (τ_max − τ_min)·σ(−t)`` and ``∂τ/∂t = −(τ_max − τ_min)·σ(−t)(1 − σ(−t))``."""
    dtype = t.dtype.type
    width = dtype(tau_max - tau_min)
    alpha, slope = sigmoid_and_slope(-t)  # σ(−t) and σ'(−t), no overflow for large |t|
    return dtype(tau_min) + width * alpha, -width * slope


def _top_k(s_neg, top_k):
    """Indices of the ``k = min(top_k, N)`` largest negatives of each row; ties: the lowest index."""
    k = min(top_k, s_neg.shape[-1])
    return np.argsort(-s_neg, axis=-1, kind="stable")[..., :k]


@op(
    inputs={
        "s_pos": FloatArray("H", "R"),
        "t_pos": FloatArray("H", "R"),
        "s_neg": FloatArray("H", "R", "N"),
        "t_neg": FloatArray("H", "R", "N"),
        "dim": IntScalar(1),
        "beta": RealScalar(0),
        "tau_min": RealScalar(0, low_open=True),
        "tau_max": RealScalar(0, low_open=True),
        "top_k": IntScalar(1),
    },
    outputs=("loss",),
    differentiable=("s_pos", "t_pos", "s_neg", "t_neg"),
    check=_check,
)
def amcl_loss(s_pos, t_pos, s_neg, t_neg, *, dim, beta=0.01, tau_min=1e-5, tau_max=2.0, top_k=100):
    r"""AMCL loss: per-head contrastive terms, each pair divided by its own learned temperature.

    AMCL gives a contrastive method several projection heads and, for every pair of
    projected views, a temperature predicted from the pair itself: a shared MLP φ maps both
    views and the score ``t = ⟨φ(u), φ(v)⟩`` is squashed into ``(τ_min, τ_max)``. Dividing a
    similarity by a large temperature lets a head give up on a pair it cannot separate; the
    regularizer ``Ω`` keeps the temperatures from running to infinity. This op is the
    SimCLR/MoCo loss of the official code's newer version (``amcl/losses.py``,
    ``AMCLNTXentLoss._direction`` and ``AMCLMoCoLoss._direction``), with its top-k
    approximation: only the ``k`` hardest negatives of each anchor enter, linearly.

    Inputs are the similarities and the temperature scores, per head h and per anchor row r.
    The rows hold both directions of the symmetrized loss stacked (view 1 anchors, then view 2
    anchors: R = 2B), so the mean over rows is the official ``½(mean₁ + mean₂)``. The
    projection heads, the L2 normalization and φ stay outside the op.

    Forward, per head h and row r (``k = min(top_k, N)``)::

        τ      = τ_min + (τ_max − τ_min)·σ(−t)            (for t⁺ and every t⁻; stable σ)
        K      = the k largest s⁻ of the row                (ties: the lowest index first)
        Ω(τ)   = (d/2) log τ + 1/τ
        ℓ_hr   = −s⁺/τ⁺ + (1/k) Σ_{j∈K} s⁻_j/τ⁻_j + β Ω(τ⁺) − β Σ_{j∈K} (log τ⁻_j + 1/τ⁻_j)
        L      = Σ_h mean_r ℓ_hr                             (heads summed, rows averaged)

    Note the official signs: the negatives' regularizer is subtracted and uses ``log τ``,
    not ``(d/2) log τ``.

    Backward. The top-k set K is piecewise constant in s⁻: the VJP holds it fixed (zero
    cotangent for the negatives outside K). With ``w = ḡ/R`` (ḡ the loss's cotangent)::

        ∂ℓ/∂s⁺   = −1/τ⁺
        ∂ℓ/∂τ⁺   = s⁺/τ⁺² + β (d/(2τ⁺) − 1/τ⁺²)
        ∂ℓ/∂s⁻_j = 1/(k τ⁻_j)                                (j ∈ K)
        ∂ℓ/∂τ⁻_j = −s⁻_j/(k τ⁻_j²) − β (1/τ⁻_j − 1/τ⁻_j²)     (j ∈ K)
        ∂τ/∂t    = −(τ_max − τ_min)·σ(−t)(1 − σ(−t))         (σ(1 − σ) as e/(1 + e)², no cancellation)

    and ``s̄⁺ = w ∂ℓ/∂s⁺``, ``t̄⁺ = w ∂ℓ/∂τ⁺ ∂τ⁺/∂t⁺``, the same for the negatives in K.

    PENDING (not implemented): the paper's maximum-likelihood form with a log-sum-exp over the
    negatives (arXiv:2310.05615 §4). The official code cites only "Eq. (5) Top-k
    approximation" for the form above; the paper's own equation could not be read, so no
    ``variant`` flag exists yet. The older official version (per-head MLP on the concatenated
    pair) is not implemented either.

    Numerics: τ_min = 1e−5 makes 1/τ up to 1e5 (the official code casts to float32 for
    this); float32 and float64 only.

    Args:
        s_pos: anchor-positive similarities s⁺ (H, R), H heads, R rows (both directions).
        t_pos: their temperature scores t⁺ (H, R).
        s_neg: anchor-negative similarities s⁻ (H, R, N) (N = 2B − 2 for SimCLR, the queue
            for MoCo).
        t_neg: their temperature scores t⁻ (H, R, N).
        dim: the projection dimension d in Ω (required: it is the caller's model's width).
        beta: regularizer weight β >= 0 (default 0.01: ``AMCLNTXentLoss``/``AMCLMoCoLoss``
            ``beta=0.01``; the official Barlow Twins variant uses 1e−4).
        tau_min: lower temperature bound (default 1e−5: ``TemperatureHead``, ``tau_min``).
        tau_max: upper temperature bound > tau_min (default 2.0: ``TemperatureHead``, ``tau_max``).
        top_k: hardest negatives kept per row (default 100: ``topk=100``); k = min(top_k, N).

    Returns:
        loss: a scalar in the dtype of ``s_pos``.

    Reference: Wang, Koniusz, Gedeon, Zheng, *Adaptive Multi-head Contrastive Learning*,
    ECCV 2024, arXiv:2310.05615; official code LeiWangR/cl (``amcl/losses.py``, ``omega``,
    ``TemperatureHead.score_to_temperature``, ``AMCLNTXentLoss``).

    >>> import numpy as np, refimpl
    >>> zero = np.zeros((1, 1))  # t = 0: τ = 0 + 2·σ(0) = 1 (tau_min = 0+ below)
    >>> loss = refimpl.losses.amcl_loss(
    ...     np.array([[0.5]]), zero, np.array([[[0.2, -0.4]]]), np.zeros((1, 1, 2)),
    ...     dim=4, beta=0.0, tau_min=1e-300, top_k=1)
    >>> round(float(loss), 12)  # −0.5/1 + 0.2/1: only the hardest negative (0.2) is kept
    -0.3
    """
    dtype = s_pos.dtype.type
    heads, rows = s_pos.shape
    selected = _top_k(s_neg, top_k)
    k = selected.shape[-1]
    s_sel = np.take_along_axis(s_neg, selected, axis=-1)
    t_sel = np.take_along_axis(t_neg, selected, axis=-1)
    tau_pos, slope_pos = _temperature(t_pos, tau_min, tau_max)
    tau_sel, slope_sel = _temperature(t_sel, tau_min, tau_max)
    beta_, half_d = dtype(beta), dtype(0.5 * dim)
    omega_pos = half_d * np.log(tau_pos) + 1 / tau_pos
    negative_term = (s_sel / tau_sel).sum(axis=-1) / dtype(k)
    negative_regularizer = (np.log(tau_sel) + 1 / tau_sel).sum(axis=-1)
    per_row = -s_pos / tau_pos + negative_term + beta_ * omega_pos - beta_ * negative_regularizer
    loss = (per_row.mean(axis=-1)).sum()
    residuals = (s_pos, tau_pos, slope_pos, selected, s_sel, tau_sel, slope_sel, s_neg.shape, beta, dim)
    return np.asarray(loss, dtype=s_pos.dtype), residuals


@amcl_loss.defvjp
def amcl_loss_backward(residuals, g_loss):
    s_pos, tau_pos, slope_pos, selected, s_sel, tau_sel, slope_sel, neg_shape, beta, dim = residuals
    dtype = s_pos.dtype.type
    k = selected.shape[-1]
    w = dtype(g_loss) / dtype(s_pos.shape[-1])  # mean over rows, sum over heads
    beta_ = dtype(beta)
    inverse_pos = 1 / tau_pos
    g_s_pos = -w * inverse_pos
    g_tau_pos = w * (s_pos * inverse_pos**2 + beta_ * (dtype(0.5 * dim) * inverse_pos - inverse_pos**2))
    g_t_pos = g_tau_pos * slope_pos
    inverse_sel = 1 / tau_sel
    g_s_sel = (w / dtype(k)) * inverse_sel
    g_tau_sel = w * (-s_sel * inverse_sel**2 / dtype(k) - beta_ * (inverse_sel - inverse_sel**2))
    g_s_neg = np.zeros(neg_shape, dtype=s_pos.dtype)
    g_t_neg = np.zeros(neg_shape, dtype=s_pos.dtype)
    np.put_along_axis(g_s_neg, selected, g_s_sel, axis=-1)  # outside K: 0 (the set is held fixed)
    np.put_along_axis(g_t_neg, selected, g_tau_sel * slope_sel, axis=-1)
    return g_s_pos.astype(s_pos.dtype), g_t_pos.astype(s_pos.dtype), g_s_neg, g_t_neg
