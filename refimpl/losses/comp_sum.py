"""Comp-sum losses Φ_τ (Cross-Entropy Loss Functions: Theoretical Analysis and Applications)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    RealScalar,
    log_softmax,
    op,
    reduce_rows,
    row_weights,
)

__all__ = ["PAPER", "comp_sum_loss"]

PAPER = Paper(
    "Cross-Entropy Loss Functions: Theoretical Analysis and Applications",
    arxiv="2304.07288",
    year=2023,
)


@op(
    inputs={
        "z": FloatArray("B", "K"),
        "y": IntArray("B", low=0, high="K"),
        "tau": RealScalar(0),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z",),
)
def comp_sum_loss(z, y, *, tau, reduction="mean"):
    r"""Comp-sum losses: a concave transform Φ_τ of the sum-exponential margin loss.

    The family composes ``Φ_τ`` with ``u = Σ_{k≠y} exp(z_k − z_y)`` and interpolates between
    the sum-exponential loss (τ = 0), the logistic/cross-entropy loss (τ = 1), generalized
    cross-entropy (1 < τ < 2) and the mean absolute error (τ = 2); the paper proves
    H-consistency bounds for the whole family.

    Forward, per row (``p = softmax(z)``; ``1 + u = 1/p_y``)::

        Φ_τ(u) = ((1 + u)^{1−τ} − 1)/(1 − τ)    (τ ≠ 1);   Φ_1(u) = log(1 + u)
        ℓ      = Φ_τ(u) = (p_y^{τ−1} − 1)/(1 − τ)         (τ ≠ 1);   ℓ = −log p_y  (τ = 1)
        L      = mean_i ℓ_i   (reduction="mean"; "sum"; "none")

    Numerics: ``u`` is never formed (it overflows for a large margin). ``log p_y`` comes
    from a max-shifted log-softmax, and with ``s = τ − 1``::

        ℓ = −expm1(s · log p_y) / s

    which is continuous at τ → 1 (→ −log p_y) without the cancellation of
    ``p_y^s − 1``. Special cases: τ = 0 is ``u`` itself; τ = 1 is cross-entropy; τ = 1 + q
    is GCE ``(1 − p_y^q)/q`` (GCE's default q = 0.7 is τ = 1.7); τ = 2 is ``1 − p_y``. For
    τ < 1 the loss is unbounded as ``p_y → 0`` (τ = 0 overflows for margins ≳ 700 in
    float64, ≳ 88 in float32): that is the value, not an instability.

    Backward. ``∂ℓ/∂log p_y = −p_y^{s}`` (from ``d/dx[−expm1(s x)/s] = −exp(s x)``), and
    ``∂log p_y/∂z = e_y − p`` (the log-softmax gradient), so::

        ∂ℓ/∂z = p_y^{τ−1} (p − e_y)          z̄_i = w_i p_iy^{τ−1} (p_i − e_y_i)

    with ``w_i`` the row's cotangent (``ḡ/B`` mean, ``ḡ`` sum, ``ḡ_i`` none); τ = 1 gives
    the cross-entropy gradient ``p − e_y``. ``p_y^{τ−1}`` is ``exp((τ−1) log p_y)``.

    Not implemented (not pinned by the paper): the paper's smooth adversarial comp-sum
    regularizer ``ν·sup_{‖x'−x‖≤γ} ‖h(x') − h(x)‖₂``, whose exact vector inside the norm
    is not pinned and which needs an attack anyway; only the clean loss is an op.

    Args:
        z: logits (B, K), float32 or float64.
        y: labels (B,), integers in [0, K).
        tau: τ ≥ 0 (required: the paper studies the whole family; τ = 1 is cross-entropy).
        reduction: "mean" (default), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the dtype of ``z``.

    Reference: Mao, Mohri, Zhong, *Cross-Entropy Loss Functions: Theoretical Analysis and
    Applications*, ICML 2023, arXiv:2304.07288. Cross-check: ``GCELoss(q)`` of
    Optimization-AI/ICML2023_LDR equals τ = 1 + q.

    >>> import numpy as np, refimpl
    >>> z, y = np.array([[0.0, np.log(3.0)]]), np.array([0])  # p_y = 1/4, u = 3
    >>> [round(float(refimpl.losses.comp_sum_loss(z, y, tau=t)), 7) for t in (0.0, 1.0, 2.0)]
    [3.0, 1.3862944, 0.75]
    """
    dtype = z.dtype
    rows = np.arange(z.shape[0])
    log_p = log_softmax(z)
    log_p_y = log_p[rows, y]
    s = dtype.type(tau - 1.0)
    if tau == 1.0:
        per_row = -log_p_y
    else:
        per_row = -np.expm1(s * log_p_y) / s
    p_y_power = np.exp(s * log_p_y)  # p_y^{τ−1}: the factor of the cross-entropy gradient
    return reduce_rows(per_row, reduction, dtype), (np.exp(log_p), p_y_power, y, reduction)


@comp_sum_loss.defvjp
def comp_sum_loss_backward(residuals, g_loss):
    p, p_y_power, y, reduction = residuals
    dtype = p.dtype
    batch = p.shape[0]
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, batch)
    g_z = p.copy()
    g_z[np.arange(batch), y] -= 1
    g_z *= (w * p_y_power)[:, None]
    return (g_z,)
