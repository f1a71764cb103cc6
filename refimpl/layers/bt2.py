"""BT²'s orthogonal basis transformation (Cayley or matrix-exponential map) and its compatibility loss."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ..authoring import (
    ArgumentError,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    log_softmax,
    op,
    reduce_rows,
    row_weights,
)

__all__ = ["PAPER", "bct_compatibility_loss", "cayley_orthogonal"]

PAPER = Paper(
    "BT^2: Backward-compatible Training with Basis Transformation",
    arxiv="2211.03989",
    year=2023,
    code="YifeiZhou02/BT-2",
)


def skew_part(s, orthogonal_map):
    """``A = S − Sᵀ`` (Cayley) or ``A = tril(S) − tril(S)ᵀ`` (matrix exponential, as PyTorch's)."""
    if orthogonal_map == "cayley":
        return s - s.T
    lower = np.tril(s)
    return lower - lower.T


def skew_part_backward(g_a, orthogonal_map):
    """VJP of :func:`skew_part`: ``Ā − Āᵀ``, then ``tril`` for the exponential map."""
    g_s = g_a - g_a.T
    return g_s if orthogonal_map == "cayley" else np.tril(g_s)


def _check_square(args):
    s = args["s"]
    if s.shape[0] != s.shape[1]:
        raise ArgumentError("s", "a square matrix (n, n)", f"shape {tuple(s.shape)}")


@op(
    inputs={
        "s": FloatArray("n", "m"),
        "base": FloatArray("n", "m", optional=True),
        "orthogonal_map": OneOf("cayley", "expm"),
    },
    outputs=("r",),
    differentiable=("s",),
    check=_check_square,
)
def cayley_orthogonal(s, *, base=None, orthogonal_map="cayley"):
    r"""An orthogonal matrix parameterized by an unconstrained square matrix (BT²'s basis change).

    BT² makes a new embedding backward compatible by rotating it: ``z = R φ_new(x)`` with
    ``R`` orthogonal, so that the first d coordinates feed the old classifier
    (:func:`bct_compatibility_loss`) and distances are unchanged. ``R`` is a smooth function
    of a free matrix ``S``, so plain gradient descent on ``S`` keeps ``R`` exactly orthogonal.

    Forward, ``orthogonal_map="cayley"`` (default; the paper's Cayley parameterization)::

        A = S − Sᵀ                        (skew-symmetric)
        M = (I + A)⁻¹                     (I + A is invertible: A's eigenvalues are imaginary)
        R = (I − A) M = M (I − A)         (the factors commute)

    computed as one linear solve ``R = solve(I + A, I − A)``, never with an explicit inverse.
    ``RᵀR = Mᵀ(I + A)(I − A)M = Mᵀ(I − A) = I`` since ``(I − A)ᵀ = I + A``, the factors
    commute and ``Mᵀ = (I − A)⁻¹``. The Cayley map cannot reach an orthogonal
    matrix with eigenvalue −1 (``R = −I`` would need ``I + A`` singular), so ``det R = +1``.

    ``orthogonal_map="expm"``: the official code's parameterization, PyTorch's
    ``torch.nn.utils.parametrizations.orthogonal`` at its defaults for a square weight
    (``orthogonal_map="matrix_exp"``)::

        A = tril(S) − tril(S)ᵀ            (the diagonal cancels)
        R = exp(A)                         (scipy.linalg.expm: scaling and squaring, Padé)

    ``base`` (optional, orthogonal, n × n): ``R ← base · R``, the dynamic-trivialization base
    of PyTorch's parametrization (the sign-fixed QR factor of the layer's initial weight);
    without it ``base = I``. It is a constant, not differentiated.

    Backward. Let ``G = ∂L/∂R`` and ``G_Q = baseᵀ G`` (the cotangent of the map's output).

    Cayley: from ``M(I + A) = I``, ``dM = −M dA M``; then
    ``dR = −dA M + (I − A) dM = −dA M − (I − A) M dA M = −(I + R) dA M``. Since
    ``I + R = M((I + A) + (I − A)) = 2M``, ``dR = −2 M dA M`` and, with ``⟨X, Y⟩ = tr(XᵀY)``,
    ``⟨G_Q, dR⟩ = ⟨−2 Mᵀ G_Q Mᵀ, dA⟩``::

        Ā = −2 Mᵀ G_Q Mᵀ        (= −(I + R)ᵀ G_Q Mᵀ, the form before simplifying)

    computed with two solves against ``I + A``: ``Y = solve((I + A)ᵀ, G_Q) = Mᵀ G_Q`` and
    ``Ā = −2 solve(I + A, Yᵀ)ᵀ`` (``Y Mᵀ = (M Yᵀ)ᵀ``).

    Exponential: the adjoint of the Fréchet derivative ``L_exp(A, ·)`` is ``L_exp(Aᵀ, ·)``,
    read off the block exponential (Najfeld and Havel; Mathias 1996)::

        Ā = upper-right n × n block of exp([[Aᵀ, G_Q], [0, Aᵀ]])

    Finally through ``A = S − Sᵀ``: ``S̄ = Ā − Āᵀ``; through ``A = tril(S) − tril(S)ᵀ``:
    ``S̄ = tril(Ā − Āᵀ)`` (strictly lower; the diagonal of ``Ā − Āᵀ`` is 0).

    Args:
        s: the free parameter S (n, n), float32/float64.
        base: optional orthogonal base (n, n); default None (the identity).
        orthogonal_map: "cayley" (default, the paper's Cayley map) or
            "expm" (the official code's map, through PyTorch's ``orthogonal`` defaults).

    Returns:
        r: the orthogonal matrix (n, n), dtype of ``s``.

    Reference: Zhou et al., *BT^2: Backward-compatible Training with Basis Transformation*,
    arXiv:2211.03989; official code YifeiZhou02/BT-2 (``models/resnet.py``, ``BasisChange``,
    which wraps its linear maps in ``torch.nn.utils.parametrizations.orthogonal``).

    >>> import numpy as np, refimpl
    >>> s = np.array([[0.0, 0.5], [0.0, 0.0]])  # A = [[0, .5], [-.5, 0]]: rotation by 2·atan(.5)
    >>> refimpl.layers.cayley_orthogonal(s)
    array([[ 0.6, -0.8],
           [ 0.8,  0.6]])
    """
    a = skew_part(s.astype(np.float64), orthogonal_map)
    eye = np.eye(s.shape[0])
    if orthogonal_map == "cayley":
        i_plus_a = eye + a
        q = np.linalg.solve(i_plus_a, eye - a)  # R = (I + A)⁻¹ (I − A): a solve, not an inverse
        saved = i_plus_a
    else:
        q = scipy.linalg.expm(a)
        saved = a
    r = q if base is None else base.astype(np.float64) @ q
    return r.astype(s.dtype), (saved, base, orthogonal_map, s.dtype)


@cayley_orthogonal.defvjp
def cayley_orthogonal_backward(residuals, g_r):
    saved, base, orthogonal_map, dtype = residuals
    g_q = g_r.astype(np.float64)
    if base is not None:
        g_q = base.astype(np.float64).T @ g_q
    if orthogonal_map == "cayley":
        i_plus_a = saved
        y = np.linalg.solve(i_plus_a.T, g_q)  # Mᵀ G_Q
        g_a = -2.0 * np.linalg.solve(i_plus_a, y.T).T  # −2 Mᵀ G_Q Mᵀ
    else:
        a = saved
        n = a.shape[0]
        block = np.zeros((2 * n, 2 * n))
        block[:n, :n] = a.T
        block[n:, n:] = a.T
        block[:n, n:] = g_q
        g_a = scipy.linalg.expm(block)[:n, n:]  # adjoint Fréchet derivative of exp at A
    return (skew_part_backward(g_a, orthogonal_map).astype(dtype),)


def _check_dims(args):
    z, weight = args["z"], args["weight"]
    if weight.shape[1] > z.shape[1]:
        raise ArgumentError(
            "z",
            f"at least d = {weight.shape[1]} coordinates (the old classifier reads the first d)",
            f"D = {z.shape[1]}",
        )


@op(
    inputs={
        "z": FloatArray("B", "D"),
        "y": IntArray("B", low=0, high="K"),
        "weight": FloatArray("K", "d"),
        "bias": FloatArray("K", optional=True),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z",),
    check=_check_dims,
)
def bct_compatibility_loss(z, y, weight, *, bias=None, reduction="mean"):
    r"""BT²'s compatibility loss: the frozen old classifier's cross-entropy on the first d coordinates.

    The transformed new embedding ``z = R φ_new(x)`` (D = d + Δ) is made compatible with the
    old model by asking the old (frozen) classifier to classify its first d coordinates; the
    remaining Δ coordinates are free to carry new information (BCT's influence loss, applied
    after BT²'s basis change).

    Forward, per row i::

        ℓ_i   = z_i[:d] Wᵀ + b                (logits of the old classifier, K classes)
        loss_i = −log_softmax(ℓ_i)[y_i]       (log-sum-exp with the max subtracted)

    reduced by ``reduction`` (mean over rows by default, as ``torch.nn.CrossEntropyLoss``).

    Backward. With row weights ``w_i = ∂L/∂loss_i`` (``ḡ/B`` for the mean) and
    ``p_i = softmax(ℓ_i)``: ``∂loss_i/∂ℓ_i = p_i − e_{y_i}``, so ``ℓ̄_i = w_i (p_i − e_{y_i})``; through
    the linear map ``z̄_i[:d] = ℓ̄_i W`` and ``z̄_i[d:] = 0`` (the added coordinates do not enter).
    The classifier is frozen: no gradient for ``W`` or ``b``.

    Args:
        z: transformed new embeddings (B, D), D ≥ d.
        y: labels (B,) in [0, K).
        weight: old classifier weight (K, d) (torch layout).
        bias: old classifier bias (K,), or None (no bias).
        reduction: "mean" (default, CrossEntropyLoss), "sum" or "none".

    Returns:
        loss: scalar (or (B,) for "none"), dtype of ``z``.

    Reference: Zhou et al., *BT^2*, arXiv:2211.03989 (the BCT influence loss of Shen et al.,
    arXiv:2003.11942, applied to the first d transformed coordinates).

    >>> import numpy as np, refimpl
    >>> z = np.array([[1.0, 0.0, 5.0]])             # the last coordinate is ignored (d = 2)
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]])      # logits [1, 0]
    >>> float(refimpl.layers.bct_compatibility_loss(z, np.array([0]), w).round(6))  # log(1 + e⁻¹)
    0.313262
    """
    d = weight.shape[1]
    logits = z[:, :d] @ weight.T
    if bias is not None:
        logits = logits + bias
    log_p = log_softmax(logits)
    per_row = -np.take_along_axis(log_p, y[:, None].astype(np.int64), axis=1)[:, 0]
    loss = reduce_rows(per_row, reduction, z.dtype)
    return loss, (np.exp(log_p), y, weight, z.shape, z.dtype, reduction)


@bct_compatibility_loss.defvjp
def bct_compatibility_loss_backward(residuals, g_loss):
    p, y, weight, shape, dtype, reduction = residuals
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, shape[0])
    g_logits = p.copy()
    g_logits[np.arange(shape[0]), y] -= 1.0  # p − e_y
    g_logits *= w[:, None]
    g_z = np.zeros(shape, dtype=dtype)
    g_z[:, : weight.shape[1]] = g_logits @ weight
    return (g_z,)
