"""StableMax and the StableMax cross-entropy (Grokking at the Edge of Numerical Stability)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    Example,
    Flag,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    known_deviation,
    op,
    reduce_rows,
    row_weights,
)

__all__ = ["stablemax", "stablemax_cross_entropy"]

PAPER = Paper(
    "Grokking at the Edge of Numerical Stability",
    arxiv="2501.04697",
    year=2025,
    code="LucasPrietoAl/grokking-at-the-edge-of-numerical-stability",
)


def s_of(z: np.ndarray) -> np.ndarray:
    """``s(z) = z + 1`` for ``z >= 0`` and ``1/(1 - z)`` for ``z < 0``, branch-free.

    ``max(z, 0) + 1/(1 - min(z, 0))``: each branch only ever sees its own half-line, so
    neither can overflow (the official code's ``1/(1 - z + 1e-30)`` at ``z = 1`` can).
    """
    return np.maximum(z, 0) + 1 / (1 - np.minimum(z, 0))


def log_s_of(z: np.ndarray) -> np.ndarray:
    """``log s(z) = sign(z)·log1p(|z|)`` (``s(z) = (1 + |z|)^sign(z)``)."""
    return np.sign(z) * np.log1p(np.abs(z))


@op(
    inputs={"z": FloatArray("...", "K")},
    outputs=("p",),
    differentiable=("z",),
)
def stablemax(z):
    r"""StableMax: a softmax whose exponential is replaced by a function that grows linearly.

    Softmax saturates in floating point once a logit dominates ("softmax collapse"), which
    stalls grokking. StableMax swaps ``exp`` for ``s``, which grows like ``x`` for large
    positive logits and decays like ``1/|x|`` for negative ones, so nothing overflows or
    underflows.

    Forward (over the last axis, K classes)::

        s(x) = x + 1        if x >= 0
               1 / (1 - x)  if x <  0          (equivalently (1 + |x|)^sign(x))
        p_k  = s(z_k) / Σ_j s(z_j)

    StableMax is **not** shift-invariant: never subtract the row maximum first.

    Backward. Write ``S = Σ_j s(z_j)``. Both branches have ``s'(x)/s(x) = 1/(1 + |x|)``:
    for x ≥ 0, ``s' = 1`` and ``s = 1 + x``; for x < 0, ``s' = 1/(1 - x)²`` and
    ``s = 1/(1 - x)``. Then ``∂p_k/∂z_m = p_k (δ_km - p_m) · s'(z_m)/s(z_m)`` and, for a
    cotangent ``ḡ`` on ``p``::

        z̄_m = Σ_k ḡ_k ∂p_k/∂z_m = p_m (ḡ_m - ⟨ḡ, p⟩) / (1 + |z_m|)

    Args:
        z: logits, shape (..., K), float32 or float64.

    Returns:
        p: probabilities, same shape and dtype; rows sum to 1.

    Reference: Prieto et al., *Grokking at the Edge of Numerical Stability*, arXiv:2501.04697.

    >>> import numpy as np, refimpl
    >>> refimpl.losses.stablemax(np.array([1.0, -2.0, 0.5])).round(7)
    array([0.5217391, 0.0869565, 0.3913043])
    """
    s = s_of(z)
    p = s / s.sum(axis=-1, keepdims=True)
    return p, (p, z)


@stablemax.defvjp
def stablemax_backward(residuals, g_p):
    p, z = residuals
    g_dot_p = (g_p * p).sum(axis=-1, keepdims=True)
    g_z = p * (g_p - g_dot_p) / (1 + np.abs(z))
    return (g_z,)


@op(
    inputs={
        "z": FloatArray("B", "K"),
        "y": IntArray("B", low=0, high="K"),
        "reduction": OneOf("mean", "sum", "none"),
        "compute_in_float64": Flag(),
    },
    outputs=("loss",),
    differentiable=("z",),
)
def stablemax_cross_entropy(z, y, *, reduction="mean", compute_in_float64=False):
    r"""Cross-entropy with StableMax probabilities in place of softmax.

    Forward, for a batch of B rows with labels ``y_i``::

        log s(x) = sign(x)·log1p(|x|)
        ℓ_i      = -log p_i,y_i = log Σ_j s(z_ij) - log s(z_i,y_i)
        L        = mean_i ℓ_i   (reduction="mean"; "sum" sums, "none" returns ℓ)

    Backward. From the StableMax Jacobian (see ``stablemax``), with ``Y`` the one-hot
    labels, ``∂ℓ_i/∂z_ik = (p_ik - Y_ik) / (1 + |z_ik|)``: the softmax cross-entropy gradient
    ``p - Y`` divided elementwise by ``1 + |z|``. With cotangent ``ḡ`` on the loss::

        z̄_ik = ḡ · (p_ik - Y_ik) / ((1 + |z_ik|)·B)   (mean)
        z̄_ik = ḡ · (p_ik - Y_ik) / (1 + |z_ik|)       (sum)
        z̄_ik = ḡ_i · (p_ik - Y_ik) / (1 + |z_ik|)     (none)

    The official code casts the logits to float64 first; ``compute_in_float64=True``
    does the same (the result is cast back to the input dtype). The default computes in
    the input dtype, which is stable here because ``s`` is evaluated branch-free.

    Args:
        z: logits (B, K), float32 or float64. Stable for |z| up to 1e6.
        y: integer labels (B,), values in [0, K).
        reduction: "mean" (default), "sum" or "none".
        compute_in_float64: upcast like the official implementation.

    Returns:
        loss: a scalar (mean, sum) or (B,) (none), in the dtype of ``z``.

    Reference: arXiv:2501.04697; official code LucasPrietoAl/grokking-at-the-edge-of-numerical-stability.

    >>> import numpy as np, refimpl
    >>> z, y = np.array([[1.0, -2.0, 0.5]]), np.array([2])
    >>> round(float(refimpl.losses.stablemax_cross_entropy(z, y)), 7)
    0.9382696
    """
    dtype = z.dtype
    if compute_in_float64:
        z = z.astype(np.float64)
    rows = np.arange(z.shape[0])
    s = s_of(z)
    sum_s = s.sum(axis=-1)
    # log of the same s values that were summed: one class gives exactly log(s) − log(s) = 0
    per_row = np.log(sum_s) - np.log(s[rows, y])
    p = s / sum_s[:, None]
    return reduce_rows(per_row, reduction, dtype), (p, z, y, reduction, dtype)


@stablemax_cross_entropy.defvjp
def stablemax_cross_entropy_backward(residuals, g_loss):
    p, z, y, reduction, dtype = residuals
    batch = z.shape[0]
    p_minus_y = p.copy()
    p_minus_y[np.arange(batch), y] -= 1
    scale = row_weights(g_loss.astype(z.dtype, copy=False), reduction, batch)[:, None]
    g_z = scale * p_minus_y / (1 + np.abs(z))
    return (g_z.astype(dtype, copy=False),)


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    stablemax_cross_entropy,
    name="stablemax-two-branch-float32-nan",
    source="LucasPrietoAl/grokking-at-the-edge-of-numerical-stability, the StableMax cross-entropy "
    "(`torch.where(x < 0, 1/(1 − x + 1e−30), x + 1)`)",
    official="evaluates both branches of s everywhere: in float32 (its path without the float64 cast) a "
    "logit of exactly 1.0 makes the unused branch 1e30, its derivative overflows and the select's "
    "backward multiplies 0·inf: a NaN gradient",
    paper="s(x) = (1 + |x|)^{sign x}, finite everywhere (refimpl evaluates each branch on its own half-line)",
    example=Example(
        args=(np.array([[1.0, -2.0, 0.5]], dtype=np.float32), np.array([2])),
        official={"cotangent of 'z'": [[float("nan"), 0.029, -0.406]]},
        reference={"cotangent of 'z'": [[0.261, 0.029, -0.406]]},
    ),
)
