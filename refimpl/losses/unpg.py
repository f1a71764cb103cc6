"""The UNPG loss: a margin softmax whose logits also hold the batch's filtered negative-pair
similarities (Unified Negative Pair Generation toward Well-discriminative Feature Space for
Face Recognition)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    FloatArray,
    IntArray,
    OneOf,
    RealScalar,
    l2_normalize,
    l2_normalize_backward,
    logsumexp,
    op,
    reduce_rows,
    row_weights,
)
from .box_and_whisker import PAPER, box_and_whisker_filter
from .box_and_whisker import _check as _check_features

__all__ = ["PAPER", "unpg_loss"]


def _check(arguments) -> None:
    _check_features(arguments)  # no zero feature row (the filter's rule)
    weight = arguments["weight"]
    zero_rows = np.flatnonzero(~np.any(weight != 0, axis=1))
    if zero_rows.size:
        raise ArgumentError(
            "weight",
            "nonzero class-weight rows (ŵ = w/‖w‖ needs ‖w‖ > 0)",
            f"row {int(zero_rows[0])} is all zeros",
        )


def margin_target(cos_y, margin, m):
    """The target logit before the scale and its derivative in ``cos θ_y``.

    ``cosface``: ``cos θ − m``, slope 1. ``arcface``: ``cos(θ + m)`` with ``θ = acos(clip(cos θ,
    −1, 1))``, slope ``cos m + sin m·cos θ/sin θ`` (= sin(θ + m)/sin θ); 0 where sin θ = 0
    (|cos θ| >= 1, at the clip, where acos has no derivative).
    """
    dtype = cos_y.dtype.type
    if margin == "cosface":
        return cos_y - dtype(m), np.ones_like(cos_y)
    c = np.clip(cos_y, -1, 1)
    theta = np.arccos(c)
    sin_theta = np.sqrt((1 - c) * (1 + c))  # no cancellation near c = ±1
    safe = np.where(sin_theta > 0, sin_theta, 1)
    slope = np.where(sin_theta > 0, dtype(np.cos(m)) + dtype(np.sin(m)) * c / safe, 0)
    return np.cos(theta + dtype(m)), slope.astype(cos_y.dtype)


@op(
    inputs={
        "x": FloatArray("B", "D"),
        "weight": FloatArray("K", "D"),
        "y": IntArray("B", low=0, high="K"),
        "margin": OneOf("arcface", "cosface"),
        "s": RealScalar(0, low_open=True),
        "m": RealScalar(0),
        "w": RealScalar(0),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("x", "weight"),
    check=_check,
)
def unpg_loss(x, weight, y, *, margin, s=64.0, m=0.5, w=1.5, reduction="mean"):
    r"""UNPG loss: ArcFace/CosFace softmax with the batch's kept negative pairs as extra logits.

    A margin softmax (ArcFace, CosFace) only compares a face with the class weights. UNPG
    adds the similarities of the batch's negative pairs (two faces of different identities)
    as extra columns of every row's logits, so the softmax also pushes those pairs apart;
    the box-and-whisker filter (:func:`box_and_whisker_filter`, reused here) first drops
    the outlying pair similarities (noisy labels).

    Forward (the official ``HeadAndLoss.forward`` with the ``unpg`` aux loss)::

        x̂_i = x_i/‖x_i‖,  ŵ_c = w_c/‖w_c‖,  cos_ic = ⟨x̂_i, ŵ_c⟩
        target_i = cos_iy − m                     (cosface)
                 = cos(acos(clip(cos_iy, −1, 1)) + m)   (arcface; no fallback past θ + m > π)
        z_ic  = s·cos_ic (c ≠ y_i),  z_iy = s·target_i
        a_p   = s·s'_p,  s' = box_and_whisker_filter(x, y, w=w)   (the kept ⟨x̂_i, x̂_j⟩, i < j)
        ℓ_i   = lse([z_i, a]) − z_iy,   L = mean_i ℓ_i   (reduction="mean"; "sum"; "none")

    The appended columns ``a`` are the same in every row, so their part of the log-sum-exp
    is computed once: ``A = lse(a)`` (−∞ without a kept pair) and ``lse_i = logaddexp(lse(z_i),
    A)`` — the same value as the official concatenation, without its B×(K + l') matrix; each
    LSE subtracts its max (s = 64 makes logits up to 64).

    Backward. The kept set (which pairs pass the filter) is piecewise constant in x: the VJP
    holds it fixed and differentiates through the kept similarities themselves (the
    official code does not detach them). With ``ω_i`` the row's cotangent::

        ∂ℓ_i/∂z_ic = softmax_ic − δ_{c y_i},     ∂ℓ_i/∂a_p = exp(a_p − lse_i)
        ā_p        = Σ_i ω_i exp(a_p − lse_i) = exp(a_p − A)·Σ_i ω_i exp(A − lse_i)  (each factor <= 1)
        c̄_ic       = s·ω_i (softmax_ic − δ_{c y_i}) · (slope_i at c = y_i, else 1)
        s̄'_p       = s·ā_p
        x̂̄_i        = Σ_c c̄_ic ŵ_c + Σ_{p ∋ i} s̄'_p x̂_{other end of p}     (a pair feeds both ends)
        ŵ̄_c        = Σ_i c̄_ic x̂_i
        x̄, w̄       = (v̄ − v̂⟨v̂, v̄⟩)/‖v‖ per row (the L2 normalization's VJP)

    with ``slope = 1`` (cosface) or ``d cos(θ + m)/d cos θ = cos m + sin m·cos θ/sin θ``
    (arcface), singular at cos θ = ±1: there (and where the clip is active) the reference
    takes 0.

    Differences from the official code: it applies ``acos`` without clipping (NaN if rounding
    pushes |cos θ| past 1; the reference clips); ``F.normalize`` clamps ‖x‖ at 1e-12 (zero
    rows are refused here); a batch without a negative pair fails there (``sorted_x[0]``)
    and appends nothing here; under ``DataParallel`` it stacks the kept similarities once per
    GPU (one device is modelled).

    Args:
        x: features (B, D), float32 or float64, no row all zeros (normalized inside).
        weight: class weights (K, D), no row all zeros (normalized inside).
        y: identity labels (B,), integers in [0, K).
        margin: "arcface" (target cos(θ + m)) or "cosface" (cos θ − m); required (the
            official ``--head`` option, no default).
        s: logit scale s > 0 (default 64: ``recognition/data/head.zoo.yaml``, ``s: 64.``).
        m: margin m >= 0 (default 0.5: ``head.zoo.yaml``, ``m: 0.5`` for both arcface and
            cosface; standard CosFace uses 0.35).
        w: whisker length in IQRs (default 1.5: ``head.zoo.yaml``, ``unpg: wisk: 1.5``).
        reduction: "mean" (default, ``nn.CrossEntropyLoss``), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the dtype of ``x``.

    Reference: Jung, Lee, Oh, Park, Park, Son, *Unified Negative Pair Generation toward
    Well-discriminative Feature Space for Face Recognition*, BMVC 2022, arXiv:2203.11593;
    official code Jung-Jun-Uk/UNPG (``recognition/models/head.py``, ``ArcFace``, ``CosFace``,
    ``UNPG``; ``recognition/models/build.py``, ``HeadAndLoss.forward``).

    >>> import numpy as np, refimpl
    >>> x = weight = np.eye(2)  # cos = I; the one negative pair (0, 1) has similarity 0
    >>> loss = refimpl.losses.unpg_loss(x, weight, np.array([0, 1]), margin="cosface", s=1.0)
    >>> round(float(loss), 10)  # each row: logits [0.5, 0, 0] → log(e^0.5 + 2) − 0.5
    0.7943767694
    """
    dtype = x.dtype.type
    batch = x.shape[0]
    rows = np.arange(batch)
    x_hat, x_norm = l2_normalize(x)  # eps = 0: zero rows were refused by the check
    w_hat, w_norm = l2_normalize(weight)
    cos = x_hat @ w_hat.T
    target, slope = margin_target(cos[rows, y], margin, m)
    logits = dtype(s) * cos
    logits[rows, y] = dtype(s) * target
    (kept, pairs), _ = box_and_whisker_filter.forward(x, y, w=w)  # the official filter, reused
    appended = dtype(s) * kept
    # the appended columns are shared by every row: their log-sum-exp once (−inf if none)
    lse_appended = logsumexp(appended) if appended.size else dtype(-np.inf)
    lse = np.logaddexp(logsumexp(logits, axis=-1), lse_appended)
    per_row = lse - logits[rows, y]
    residuals = (
        x_hat,
        x_norm,
        w_hat,
        w_norm,
        logits,
        lse,
        y,
        slope,
        appended,
        lse_appended,
        pairs,
        s,
        reduction,
    )
    return reduce_rows(per_row, reduction, x.dtype), residuals


@unpg_loss.defvjp
def unpg_loss_backward(residuals, g_loss):
    x_hat, x_norm, w_hat, w_norm, logits, lse, y, slope, appended, lse_appended, pairs, s, reduction = (
        residuals
    )
    dtype = x_hat.dtype
    batch = x_hat.shape[0]
    rows = np.arange(batch)
    omega = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, batch)
    g_logits = np.exp(logits - lse[:, None])  # softmax over the class columns
    g_logits[rows, y] -= 1
    g_cos = (dtype.type(s) * omega)[:, None] * g_logits
    g_cos[rows, y] *= slope  # through the margin
    g_x_hat = g_cos @ w_hat
    g_w_hat = g_cos.T @ x_hat
    if appended.size:
        # ā_p = exp(a_p − A)·Σ_i ω_i exp(A − lse_i): both exponents <= 0
        g_appended = np.exp(appended - lse_appended) * (omega * np.exp(lse_appended - lse)).sum()
        pair_cotangent = np.zeros((batch, batch), dtype=dtype)
        pair_cotangent[pairs[:, 0], pairs[:, 1]] = dtype.type(s) * g_appended  # each pair once
        g_x_hat += (pair_cotangent + pair_cotangent.T) @ x_hat  # ⟨x̂_i, x̂_j⟩ feeds both ends
    g_x = l2_normalize_backward(x_hat, x_norm, g_x_hat)
    g_w = l2_normalize_backward(w_hat, w_norm, g_w_hat)
    return g_x.astype(dtype, copy=False), g_w.astype(dtype, copy=False)
