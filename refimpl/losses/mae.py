"""The MAE loss for classification (Robust Loss Functions under Label Noise for Deep Neural Networks)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    Example,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    known_deviation,
    op,
    reduce_rows,
    row_weights,
)

__all__ = ["PAPER", "mae_loss"]

PAPER = Paper(
    "Robust Loss Functions under Label Noise for Deep Neural Networks",
    arxiv="1712.09482",
    year=2017,
    code=None,
)


@op(
    inputs={
        "z": FloatArray("B", "K"),
        "y": IntArray("B", low=0, high="K"),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z",),
)
def mae_loss(z, y, *, reduction="mean"):
    r"""Mean absolute error between the one-hot label and the softmax of the logits.

    Ghosh et al. call a loss *symmetric* when ``Σ_k ℓ(z, k)`` is the same constant for every
    ``z``; such a loss is tolerant to uniform label noise (below ``(K − 1)/K``) and, with a
    zero-risk minimizer, to class-conditional noise. MAE is symmetric (``Σ_k ℓ(z, k) =
    2(K − 1)``); the cross-entropy is not. It is also one of the baselines of the LDR paper
    (Optimization-AI/ICML2023_LDR, ``loss.py``, ``MAELoss``, run by ``experiment.py`` with
    ``--loss MAE`` on one-hot labels).

    Forward, per row (K classes, ``e_y`` the one-hot label, ``p = softmax(z)``)::

        ℓ_i = ‖e_{y_i} − p_i‖₁ = (1 − p_{i,y}) + Σ_{k≠y} p_ik = 2(1 − p_{i,y}) = 2 Σ_{k≠y} p_ik
        L   = mean_i ℓ_i   (reduction="mean", the official ``torch.mean``; "sum"; "none")

    With ``u_k = exp(z_k − max z)`` (no overflow), ``1 − p_y`` is computed as
    ``q = Σ_{k≠y} u_k / Σ_k u_k``, which keeps its relative accuracy as ``p_y → 1`` where
    ``1 − p_y`` cancels; both sums run in the same order, so ``0 ≤ ℓ ≤ 2`` holds exactly.

    Backward. The softmax Jacobian is ``∂p_y/∂z_j = p_y (δ_jy − p_j)``, and ``ℓ = 2 − 2 p_y``, so::

        ∂ℓ/∂z_j = −2 p_y (δ_jy − p_j)
                = 2 p_y p_j                                  (j ≠ y)
                = −2 p_y (1 − p_y) = −2 p_y Σ_{k≠y} p_k = −2 p_y q   (j = y)

    and ``z̄_i = w_i ∂ℓ_i/∂z_i`` with ``w_i`` the row's cotangent (``ḡ/B`` for the mean,
    ``row_weights``). Each row of the gradient sums to 0 (shift invariance). The factor
    ``p_y`` is MAE's known weakness: the gradient vanishes both when the row is fitted
    (``q → 0``) and when the label is given almost no mass (``p_y → 0``), so hard examples
    learn slowly. With K = 1, ``p = [1]``: the loss and its gradient are 0.

    Official code: the LDR repository's ``MAELoss.forward`` drops the absolute value and is
    identically 0; recorded as the deviation ``ldr-mae-loss-missing-abs`` (a bug, no flag).

    Args:
        z: logits (B, K), float32 or float64.
        y: labels (B,), integers in [0, K).
        reduction: "mean" (default, the official ``torch.mean``), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the dtype of ``z``.

    Reference: Ghosh, Kumar, Sastry, *Robust Loss Functions under Label Noise for Deep Neural
    Networks*, AAAI 2017, arXiv:1712.09482 (the symmetry condition Σ_k ℓ(z, k) = C and the
    noise-tolerance theorems; MAE as the ℓ1 distance between the label vector and the
    softmax); baseline of Optimization-AI/ICML2023_LDR (``loss.py``, ``MAELoss``).

    >>> import numpy as np, refimpl
    >>> z, y = np.array([[0.0, 0.0]]), np.array([0])  # p = [½, ½]
    >>> float(refimpl.losses.mae_loss(z, y))
    1.0
    """
    dtype = z.dtype
    batch = z.shape[0]
    rows = np.arange(batch)
    e = np.exp(z - z.max(axis=-1, keepdims=True))  # subtract the row max: exp cannot overflow
    total = e.sum(axis=-1)
    others = e.copy()
    others[rows, y] = 0
    # Σ_{k≠y} p_k = 1 − p_y without the cancellation; summed in the order of the total, so
    # (rounding being monotone) others ≤ total and ℓ ≤ 2 holds exactly
    q = others.sum(axis=-1) / total
    p = e / total[:, None]
    per_row = 2 * q
    return reduce_rows(per_row, reduction, dtype), (p, y, q, reduction)


@mae_loss.defvjp
def mae_loss_backward(residuals, g_loss):
    p, y, q, reduction = residuals
    dtype = p.dtype
    batch = p.shape[0]
    rows = np.arange(batch)
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, batch)
    p_y = p[rows, y]
    g_z = (2 * w * p_y)[:, None] * p  # 2 p_y p_j off the label
    g_z[rows, y] = -2 * w * p_y * q  # −2 p_y Σ_{k≠y} p_k at the label
    return (g_z.astype(dtype, copy=False),)


known_deviation(
    mae_loss,
    name="ldr-mae-loss-missing-abs",
    source="Optimization-AI/ICML2023_LDR, loss.py, MAELoss.forward",
    official="torch.mean(torch.sum(y_true − softmax(y_pred), dim=1)) without the absolute value: with "
    "one-hot y_true every row sums to 1 − 1 = 0, so the loss and its gradient are identically 0 (up to "
    "rounding) and the MAE baseline never trains",
    paper="ℓ = ‖e_y − softmax(z)‖₁ = 2(1 − p_y) (Ghosh et al. 2017)",
    example=Example(
        args=(np.array([[2.0, 0.0]]), np.array([0])),
        kwargs={"reduction": "none"},
        official={"loss": [0.0]},
        reference={"loss": [0.2384058]},
        note="p = [e²/(e² + 1), 1/(e² + 1)]: Σ_k (e_y − p)_k = 0 vs 2(1 − e²/(e² + 1)) = 2/(e² + 1)",
    ),
)
