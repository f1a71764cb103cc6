"""The Z-loss (a shift and scale invariant classification loss belonging to the Spherical Family)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    op,
    reduce_rows,
    row_norm,
    row_weights,
    sigmoid,
    softplus,
)

__all__ = ["PAPER", "z_loss"]

PAPER = Paper(
    "The Z-loss: a shift and scale invariant classification loss belonging to the Spherical Family",
    arxiv="1604.08859",
    year=2016,
)


def _check(arguments) -> None:
    o, eps = arguments["o"], arguments["eps"]
    if o.shape[-1] < 2:
        raise ArgumentError("o", "D >= 2 outputs (σ of one output is 0)", f"shape {tuple(o.shape)}")
    if eps == 0:
        xp = array_namespace(o)
        spread = xp.max(o, axis=-1) - xp.min(o, axis=-1)
        if bool(xp.any(spread == 0)):
            row = int(xp.argmax(spread == 0))
            raise ArgumentError(
                "o",
                "rows with at least two different outputs when eps = 0 (σ = 0 divides; pass eps > 0)",
                f"all outputs equal in row {row}",
            )


@op(
    inputs={
        "o": FloatArray("B", "D"),
        "c": IntArray("B", low=0, high="D"),
        "a": RealScalar(0, low_open=True),
        "b": RealScalar(),
        "eps": RealScalar(0),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("o",),
    check=_check,
)
def z_loss(o, c, *, a, b, eps=0.0, reduction="mean"):
    r"""Z-loss: a softplus of the target's z-score among the outputs.

    The outputs of a row are standardized (mean 0, standard deviation 1), so the loss only
    sees where the target sits relative to the others: it is invariant to shifting and to
    positively rescaling the outputs, like rank-based metrics (top-k error), and it belongs
    to the spherical family (it depends on o only through Σo, Σo² and o_c). ``a`` sets the
    sharpness and ``b`` the z-score beyond which the target stops being pushed.

    Not the PaLM "z-loss" (the log²Z regularizer), which is a different routine.

    Forward, per row (D outputs, target c)::

        μ   = mean_k o_k
        σ   = sqrt(mean_k (o_k − μ)² + eps)          (population std, two-pass)
        z_k = (o_k − μ)/σ
        ℓ   = (1/a) softplus(a (b − z_c))            (stable softplus)
        L   = mean_i ℓ_i   (reduction="mean"; "sum"; "none")

    Rows whose deviations cannot be squared in the dtype (float32: beyond ~1.8e19, or below
    ~1e-19 with eps = 0) take σ from the norm computed scaled (``row_norm``).

    Backward. With ``s = σ(a(b − z_c))`` (the logistic sigmoid), ``∂ℓ/∂z_c = −s``. From
    ``v = mean_k (o_k − μ)²``: ``∂v/∂o_k = 2(o_k − μ)/D`` (the ``∂μ`` terms sum to 0), so
    ``∂σ/∂o_k = (o_k − μ)/(Dσ) = z_k/D`` (also with eps). Then::

        ∂z_c/∂o_k = (δ_kc − 1/D)/σ − (o_c − μ)/σ² · z_k/D = (δ_kc − 1/D − z_c z_k/D)/σ
        ∂ℓ/∂o_k   = −(s/σ)(δ_kc − 1/D − z_c z_k/D)

    and ``ō_i = w_i ∂ℓ_i/∂o_i`` with ``w_i`` the row's cotangent. Invariants (eps = 0):
    ``Σ_k ∂ℓ/∂o_k = 0`` (shift) and ``Σ_k o_k ∂ℓ/∂o_k = 0`` (scale), using ``Σ z = 0`` and
    ``Σ z² = D``.

    Not pinned by the paper: its recommended (a, b); they are tuned per task, so both
    are required arguments (no silent default).

    Args:
        o: outputs (pre-activations) (B, D), D ≥ 2, float32 or float64.
        c: target classes (B,), integers in [0, D).
        a: sharpness a > 0 (required).
        b: location b (required).
        eps: added to the variance inside the square root (default 0, the paper's formula;
            then a row of equal outputs is refused). eps > 0 breaks exact scale invariance.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the dtype of ``o``.

    Reference: de Brébisson, Vincent, *The Z-loss: a shift and scale invariant classification
    loss belonging to the Spherical Family*, arXiv:1604.08859 (original code in Theano, not
    found).

    >>> import numpy as np, refimpl
    >>> o, c = np.array([[1.0, -1.0]]), np.array([0])  # z = [1, −1]
    >>> round(float(refimpl.losses.z_loss(o, c, a=1.0, b=1.0)), 7)  # softplus(0) = log 2
    0.6931472
    """
    dtype = o.dtype
    num_outputs = o.shape[-1]
    rows = np.arange(o.shape[0])
    mu = o.mean(axis=-1, keepdims=True)
    centered = o - mu
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    sigma = np.sqrt(variance + dtype.type(eps))
    # deviations too large (or, with eps = 0, too small) to square in the dtype: σ from the
    # norm computed scaled, σ = sqrt(‖o − μ‖² + D·eps)/√D (eps negligible, or dominant, there)
    redo = ~np.isfinite(variance) | ((variance < np.finfo(dtype).tiny) & (eps == 0))
    if redo.any():
        sigma = np.where(redo, row_norm(centered, num_outputs * eps) / np.sqrt(num_outputs), sigma)
        sigma = sigma.astype(dtype)
    z = centered / sigma
    z_c = z[rows, c]
    a_ = dtype.type(a)
    argument = a_ * (dtype.type(b) - z_c)
    per_row = softplus(argument) / a_
    s = sigmoid(argument)
    return reduce_rows(per_row, reduction, dtype), (z, sigma, s, c, num_outputs, reduction)


@z_loss.defvjp
def z_loss_backward(residuals, g_loss):
    z, sigma, s, c, num_outputs, reduction = residuals
    dtype = z.dtype
    batch = z.shape[0]
    rows = np.arange(batch)
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, batch)
    d = dtype.type(num_outputs)
    z_c = z[rows, c]
    # ∂z_c/∂o_k · σ = δ_kc − 1/D − z_c z_k/D
    dz_c = -(1 + z_c[:, None] * z) / d
    dz_c[rows, c] += 1
    g_o = (-(w * s)[:, None] / sigma) * dz_c
    return (g_o.astype(dtype, copy=False),)
