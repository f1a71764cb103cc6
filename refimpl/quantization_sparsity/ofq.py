"""OFQ, oscillation-free quantization for low-bit ViTs: StatsQ, CGA's boundary mask and QKR."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntScalar,
    Paper,
    RealScalar,
    array_namespace,
    known_deviation,
    op,
)

__all__ = [
    "PAPER",
    "cga_boundary_mask",
    "qkr_quantize",
    "statsq_levels",
    "statsq_quantize",
    "statsq_scale",
]

PAPER = Paper(
    "Oscillation-free Quantization for Low-bit Vision Transformers",
    arxiv="2302.02210",
    year=2023,
    code="nbasyl/OFQ",
)

#: the upper clip of w̃ is 1 − 1e-6 (``clip_val/2 − 1e-6`` with ``clip_val`` = 2 in the official
#: ``StatsQuantizer``): w̃ = 1 would give n·w̃ − 0.5 = n − 0.5, which rounds (half to even) to
#: the level n above the grid for every b ≥ 2
UPPER_CLIP_GAP = 1e-6
#: the widest bit width: n = 2^(b−1) ≤ 2^23 keeps n·w̃ − 0.5 exact in float32 (w̃ ∈ [−1, 1) has
#: 24 significant bits, so its multiples by n ≤ 2^23 are multiples of 1/2)
MAX_BITS = 24


# -- the StatsQ quantizer, shared by the three ops -------------------------------------------
def statsq_scale(W):
    """StatsQ's scale ``s = 2·mean|W|`` (detached): per row ``(o, 1)`` for a 2-D weight, and for a
    3-D per-head weight ``(H, R, C)`` the mean over the last axis then over the heads, ``(1, R, 1)``
    (official ``StatsQuantizer.forward``, ``src/quantization/quantizer/statsq.py``)."""
    magnitude = np.abs(W)
    if W.ndim == 2:
        return 2 * magnitude.mean(axis=1, keepdims=True)
    return 2 * magnitude.mean(axis=-1, keepdims=True).mean(axis=0, keepdims=True)


def _rounding_input(W, scale, bits):
    """β = n·w̃ − 0.5 with w̃ = clip(W/s, −1, 1 − 1e-6) and n = 2^(b−1), in the dtype of W."""
    dtype = W.dtype.type
    n = dtype(2.0 ** (bits - 1))
    w_tilde = np.clip(W / scale, dtype(-1.0), dtype(1.0 - UPPER_CLIP_GAP))
    return n * w_tilde - dtype(0.5), n


def statsq_levels(W, scale, *, bits, clamp_levels=False):
    """StatsQ with the scale given: ``s·(rint(n·w̃ − 0.5) + 0.5)/n``, ``rint`` half to even.

    The forward of :func:`statsq_quantize` once ``s`` is fixed (held fixed, a fake-quantized
    weight is a fixed point of this map). ``clamp_levels`` clamps the integer to [−n, n − 1].
    """
    dtype = W.dtype.type
    beta, n = _rounding_input(W, scale, bits)
    k = np.rint(beta)  # round half to even: β = −0.5 (a zero weight) gives −0, the level +s/(2n)
    if clamp_levels:
        k = np.clip(k, -n, n - 1)
    return scale * ((k + dtype(0.5)) / n)


def _zero_scale_rows(zero):
    """The indices (as text, the first five) where the mask ``zero`` is True, or "" when none is."""
    xp = array_namespace(zero)
    if not bool(xp.any(zero)):
        return ""
    return ", ".join(str(int(i)) for i in xp.argwhere(zero.reshape(-1))[:5, 0])


def _zero_scales(W, per_head_scale=False):
    """Where the scale is 0 as :func:`statsq_scale` computes it (per row, per row index shared
    by the heads, or per row of every head), on the array library of W.

    A mean of |W| can only be 0 where the largest |entry| is below count·4·tiny (all-zero
    rows, or entries so small that their mean underflows); two reductions without a
    temporary find those, and only then is the scale itself computed.
    """
    xp = array_namespace(W)
    shared = W.ndim == 3 and not per_head_scale
    axes = (0, 2) if shared else -1
    count = W.shape[-1] * (W.shape[0] if shared else 1)
    largest = xp.maximum(W.max(axis=axes), -W.min(axis=axes))
    if not bool(xp.any(largest < 4 * count * float(xp.finfo(W.dtype).tiny))):
        return largest < 0  # nowhere
    magnitude = xp.abs(W)
    if shared:
        return 2 * magnitude.mean(axis=-1).mean(axis=0) == 0
    return 2 * magnitude.mean(axis=-1) == 0


ZERO_SCALE = "(an all-zero row, or entries whose mean underflows in the dtype)"


def _check_weight(arguments, name="W") -> None:
    W = arguments[name]
    if W.ndim > 3:
        raise ArgumentError(
            name, "a 2-D weight (out, in) or a 3-D per-head weight (H, R, C)", f"shape {tuple(W.shape)}"
        )
    rows = _zero_scale_rows(_zero_scales(W))
    if rows and W.ndim == 2:
        raise ArgumentError(
            name, "rows with a positive scale s = 2·mean|row|", f"s = 0 in rows {rows} {ZERO_SCALE}"
        )
    if rows:
        raise ArgumentError(
            name,
            "row indices r with a positive scale s_r = 2·mean over the heads and columns of |W[:, r, :]|",
            f"s = 0 for r = {rows} {ZERO_SCALE}",
        )


# -- StatsQ --------------------------------------------------------------------------------------
@op(
    inputs={
        "W": FloatArray("...", "R", "C"),
        "bits": IntScalar(1, MAX_BITS),
        "clamp_levels": Flag(),
    },
    outputs=("w_q",),
    differentiable=("W",),
    check=_check_weight,
    custom_vjp="straight-through estimator: rint has zero derivative almost everywhere, so the paper "
    "passes the upstream gradient through unchanged (clipped region included) and detaches the scale",
)
def statsq_quantize(W, *, bits, clamp_levels=False):
    r"""StatsQ: fake-quantize a weight with a scale taken from its statistics (OFQ).

    A learnable quantization scale (LSQ) moves with every step, and each move drags weights
    across rounding boundaries: the quantized weights oscillate between two levels. StatsQ
    takes the scale from the weight itself, ``s = 2·mean|W|`` per output row, detached, so
    it is not trained at all, and fake-quantizes onto ``2^b`` symmetric levels without
    zero, ``±(k + ½)·s/n`` (k = 0..n−1, n = 2^(b−1)): every b-bit code is a level.

    Forward (``R``: rows, ``C``: columns; n = 2^(b−1))::

        s   = 2·mean_j |W_rj|                   (r, 1)        a 2-D weight (out, in)
        s   = 2·mean_h (mean_j |W_hrj|)         (1, R, 1)     a 3-D per-head weight (H, R, C)
        w̃   = clip(W/s, −1, 1 − 1e-6)
        k   = rint(n·w̃ − 0.5)                   round half to even
        Q   = s·(k + 0.5)/n

    Rounding is half to even (NumPy ``rint``, PyTorch ``round``), not half away from zero:
    a zero weight has n·w̃ − 0.5 = −0.5, which rounds to −0, so it lands on the level
    ``+s/(2n)``; w̃ = k/n lands on the even neighbour. The upper clip ``1 − 1e-6`` keeps
    w̃ = 1 on the top level n − 1 (1 would round to n for b ≥ 2).

    **b = 1** (n = 1, the levels ±s/2): w̃ = −1, i.e. W ≤ −s, gives ``rint(−1.5) = −2`` and
    the level −1.5·s, outside the grid; the official code does the same (its clip is
    asymmetric and only the top is guarded), and so does this op by default.
    ``clamp_levels=True`` clamps k to [−n, n − 1], which changes only that case.

    Backward: a straight-through estimator, not the derivative (which is 0 almost
    everywhere). The official code writes ``Q.detach() − W.detach() + W``, whose derivative is
    the identity, so::

        ∂L/∂W = ∂L/∂Q          everywhere, INCLUDING the clipped region (no clip mask)

    and s, detached, receives nothing. The backward returns the cotangent unchanged (a copy).

    Args:
        W: weight, 2-D (out, in): one scale per output row; or 3-D per head (H, R, C): one
            scale per row index, shared by the heads. float32 or float64. A row (2-D) or a row
            index (3-D) that is all zero gives s = 0 and is refused.
        bits: bit width b in [1, 24] (required: the paper trains 2, 3 and 4 bits).
        clamp_levels: clamp k to the grid [−n, n − 1] (default False, as the official code;
            only b = 1 with W ≤ −s differs).

    Returns:
        w_q: the fake-quantized weight, the shape and dtype of W.

    Reference: Liu, Liu, Cheng, *Oscillation-free Quantization for Low-bit Vision
    Transformers*, ICML 2023, arXiv:2302.02210, StatsQ; official code nbasyl/OFQ,
    ``src/quantization/quantizer/statsq.py`` (``StatsQuantizer.forward``: the scale, the clip
    ``clip_val/2 − 1e-6`` with ``clip_val`` = 2, ``round(w̃·n − 0.5) + 0.5``, the STE).

    >>> import numpy as np, refimpl
    >>> W = np.array([[0.0, 1.0, -1.0, 2.0]])  # s = 2·mean|W| = 2, w̃ = [0, ½, −½, 1 − 1e-6]
    >>> refimpl.quantization_sparsity.statsq_quantize(W, bits=2)  # k = rint([−.5, .5, −1.5, 1.5⁻])
    array([[ 0.5,  0.5, -1.5,  1.5]])
    """
    scale = statsq_scale(W)
    return statsq_levels(W, scale, bits=bits, clamp_levels=clamp_levels), W.dtype


@statsq_quantize.defvjp
def statsq_quantize_backward(residuals, g_w_q):
    dtype = residuals
    # the straight-through estimator: ∂L/∂W = ∂L/∂Q (a new array, in the dtype of W)
    return (np.array(g_w_q, dtype=dtype, copy=True),)


# -- CGA -----------------------------------------------------------------------------------------
@op(
    inputs={
        "W": FloatArray("...", "R", "C"),
        "bits": IntScalar(1, MAX_BITS),
        "boundary_range": RealScalar(0, 0.5, high_open=True),
    },
    outputs=("near_boundary",),
    check=_check_weight,
)
def cga_boundary_mask(W, *, bits, boundary_range=0.005):
    r"""CGA: which weights sit near a rounding boundary of StatsQ (the rest are frozen).

    Confidence-guided annealing ends OFQ's training: for ``freeze_for_n_epochs`` = 15 epochs
    (official ``cga.py``) only the weights whose quantized value is still uncertain, those
    within ``δ`` of a rounding boundary, keep training; the confident ones get a zero
    gradient and are restored to their frozen values after every optimizer step, so they
    can no longer oscillate. This op computes that mask for one weight; the caller applies it
    (``g ← g·mask`` before the step, ``W ← where(mask, W_new, W_old)`` after it).

    Forward, with StatsQ's ``s`` and ``w̃`` (:func:`statsq_quantize`; n = 2^(b−1))::

        β    = n·w̃ − 0.5                                 (the input of rint)
        I    = [min rint(β), max rint(β))  over the whole tensor (integers)
        near = ∃ i ∈ I:  0.5 − δ ≤ β − i ≤ 0.5 + δ      (the boundary between levels i and i+1)

    For δ < 0.5 the only candidate is ``i = floor(β)`` (β − i must lie in (0, 1)), and
    ``β − floor(β)`` is exact, so the test is one comparison per weight instead of the official
    loop over every i in I; it gives the same mask. The bounds ``0.5 ± δ`` are rounded to the
    dtype of W (as PyTorch compares a tensor with a Python number). A boundary between a
    level and one no weight of the tensor rounds to lies outside I and marks nothing.

    Not differentiable: a mask.

    The official training loop (``cga.py``) applies this mask to the 2-D weights of the
    blocks' linear layers (``qkv`` or, with QKR, ``.v``; ``proj``, ``fc1``, ``fc2``). Its QKR
    quantizer for CGA (``StatsQuantizer_specific_4_qkreparam_cga`` in ``statsq.py``) computes a
    similar mask over the fixed range ``[−n, n − 1)`` and detaches β where it is False, but the
    quantizer's output ``Q.detach() − W.detach() + W`` discards that gradient path, so the
    mask does not act there: with QKR, W_q and W_k are never frozen.

    Args:
        W: weight, 2-D (out, in) or 3-D per head (H, R, C), with the scale rule of
            :func:`statsq_quantize` (the official CGA applies it to the 2-D linear weights).
        bits: bit width b in [1, 24] (required).
        boundary_range: δ in [0, 0.5) (default 0.005, the official ``--boundaryRange``;
            0.007 is also suggested there).

    Returns:
        near_boundary: bool, the shape of W: True where the weight keeps training, False where
        CGA freezes it.

    Reference: Liu, Liu, Cheng, *Oscillation-free Quantization for Low-bit Vision
    Transformers*, arXiv:2302.02210, CGA; official code nbasyl/OFQ, ``cga.py``
    (``freeze_outside_boundary_weight_idx``: the range ``np.arange(min, max)`` of the rounded
    β, the inclusive bounds; ``--boundaryRange`` 0.005, ``--freeze_for_n_epochs`` 15).

    >>> import numpy as np, refimpl
    >>> W = np.array([[0.502, 0.506, 0.002, -0.99]])  # s = 2·mean|W| = 1; b = 2: β = 2w̃ − ½
    >>> refimpl.quantization_sparsity.cga_boundary_mask(W, bits=2)  # β = [.504, .512, −.496, −2.48]
    array([[ True, False,  True, False]])

    (rint(β) spans [−2, 1], so I = {−2, −1, 0}: the boundaries ½ and −½ are 0.004 away; −2.5,
    0.02 away from β = −2.48, lies below I.)
    """
    scale = statsq_scale(W)
    beta, _ = _rounding_input(W, scale, bits)
    rounded = np.rint(beta)
    lowest, highest = rounded.min(), rounded.max()
    dtype = W.dtype.type
    i = np.floor(beta)
    fraction = beta - i  # exact: the fractional part of β
    near = (
        (i >= lowest)
        & (i < highest)
        & (fraction <= dtype(0.5 + boundary_range))
        & (fraction >= dtype(0.5 - boundary_range))
    )
    return near, None


# -- QKR -----------------------------------------------------------------------------------------
def _product_scale(W_qk, per_head_scale):
    if per_head_scale:  # the official reshape to (H·D, D): one scale per row of every head
        return 2 * np.abs(W_qk).mean(axis=-1, keepdims=True)
    return statsq_scale(W_qk)


def _check_qkr(arguments) -> None:
    W_q, W_k = arguments["W_q"], arguments["W_k"]
    xp = array_namespace(W_q)
    per_head_scale = arguments["per_head_scale"]
    zero = _zero_scales(xp.matmul(xp.swapaxes(W_q, -1, -2), W_k), per_head_scale)
    if per_head_scale and bool(xp.any(zero)):  # zero: (H, D)
        head, row = (int(v) for v in xp.argwhere(zero)[0])
        raise ArgumentError(
            "W_q",
            "rows of W_qᵀW_k with a positive scale in every head (per_head_scale)",
            f"s = 0 in row {row} of head {head} {ZERO_SCALE}",
        )
    rows = _zero_scale_rows(zero)
    if rows:
        raise ArgumentError(
            "W_q",
            "rows of W_qᵀW_k with a positive scale shared by the heads",
            f"s = 0 in rows {rows}, zero in every head {ZERO_SCALE}",
        )


@op(
    inputs={
        "W_q": FloatArray("H", "d", "D"),
        "W_k": FloatArray("H", "d", "D"),
        "bits": IntScalar(1, MAX_BITS),
        "clamp_levels": Flag(),
        "per_head_scale": Flag(),
    },
    outputs=("w_qk",),
    differentiable=("W_q", "W_k"),
    check=_check_qkr,
    custom_vjp="straight-through estimator through the quantizer: the gradient G of the quantized "
    "product passes to W_qk = W_qᵀW_k unchanged, then through the product by the chain rule",
)
def qkr_quantize(W_q, W_k, *, bits, clamp_levels=False, per_head_scale=False):
    r"""QKR: quantize each head's query-key product W_qᵀW_k instead of W_q and W_k (OFQ).

    Attention only uses the query and key weights through the bilinear form
    ``x W_qᵀ W_k yᵀ``. Quantized separately, a rounding flip in W_q changes the gradient of
    every weight of W_k and back: the two oscillate together. Query-key reparameterization
    quantizes the product ``W_qk = W_qᵀ W_k`` (D, D) of each head with StatsQ instead, so
    there is one quantizer and one rounding per entry of the form actually used.

    Forward, per head h (``d``: head dimension, ``D``: model width)::

        W_qk[h] = W_q[h]ᵀ W_k[h]                    (D, D)
        Q       = StatsQ_3D(W_qk)                   (H, D, D)

    with the 3-D StatsQ of :func:`statsq_quantize`: ``s = 2·mean_h mean_j |W_qk[h, r, j]|``, one
    scale per row r shared by the heads, shape (1, D, 1). ``per_head_scale=True`` takes one
    scale per row of every head instead (shape (H, D, 1)), as the official code does: it
    reshapes W_qk to (H·D, D) and applies the 2-D StatsQ (a recorded deviation).

    Backward: the straight-through estimator of StatsQ passes ``G = ∂L/∂Q`` to W_qk
    unchanged, then the chain rule through the product. With ``W_qk[a, b] = Σ_r W_q[r, a]
    W_k[r, b]`` (per head)::

        ∂L/∂W_q[r, a] = Σ_b G[a, b] W_k[r, b]   →   ∂L/∂W_q = W_k Gᵀ      (d, D)
        ∂L/∂W_k[r, b] = Σ_a G[a, b] W_q[r, a]   →   ∂L/∂W_k = W_q G       (d, D)

    Args:
        W_q: query weights per head (H, d, D): head h's rows of the (D, D) query projection
            (``q.weight.reshape(H, D/H, D)`` in the official code).
        W_k: key weights per head (H, d, D), the same layout.
        bits: bit width b in [1, 24] (required).
        clamp_levels: clamp the integers to the grid (see :func:`statsq_quantize`; default False).
        per_head_scale: one scale per row of every head (the official code) instead of one per
            row shared by the heads (default False).

    Returns:
        w_qk: the fake-quantized products (H, D, D), in the dtype of W_q.

    Reference: Liu, Liu, Cheng, *Oscillation-free Quantization for Low-bit Vision
    Transformers*, arXiv:2302.02210, QKR; official code nbasyl/OFQ,
    ``src/quantization/modules/attention.py`` (``QAttention_qkreparam.forward``: the product
    ``multi_head_q_weight.transpose(-2, -1) @ multi_head_k_weight``, reshaped to
    (H·D, D) for ``StatsQuantizer``).

    >>> import numpy as np, refimpl
    >>> W_q, W_k = np.array([[[1.0, 2.0]]]), np.array([[[1.0, -1.0]]])  # H = 1, d = 1, D = 2
    >>> refimpl.quantization_sparsity.qkr_quantize(W_q, W_k, bits=2)  # W_qk = [[1, −1], [2, −2]]
    array([[[ 0.5, -1.5],
            [ 1. , -3. ]]])

    (s = [2, 4] per row, w̃ = [½, −½], β = 2w̃ − ½ = [½, −1.5] rounds half to even to [0, −2]:
    the levels (k + ½)/2 = [¼, −¾] times s.)
    """
    W_qk = np.matmul(np.swapaxes(W_q, -1, -2), W_k)
    scale = _product_scale(W_qk, per_head_scale)
    return statsq_levels(W_qk, scale, bits=bits, clamp_levels=clamp_levels), (W_q, W_k)


@qkr_quantize.defvjp
def qkr_quantize_backward(residuals, g_w_qk):
    W_q, W_k = residuals
    G = np.asarray(g_w_qk).astype(W_q.dtype, copy=False)
    g_W_q = np.matmul(W_k, np.swapaxes(G, -1, -2))  # W_k Gᵀ per head
    g_W_k = np.matmul(W_q, G)  # W_q G per head
    return g_W_q, g_W_k


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    qkr_quantize,
    name="ofq-qkr-per-head-scale",
    source="nbasyl/OFQ, src/quantization/modules/attention.py and swin_attention_and_mlp.py, "
    "QAttention_qkreparam(_4_cga).forward (`multi_head_qk.reshape(num_heads*out_features, in_features)` "
    "before `self.qk_quant`, a 2-D StatsQuantizer)",
    official="quantizes W_qk reshaped to (H·D, D) with the 2-D StatsQ: one scale 2·mean_j |W_qk[h, r, j]| "
    "per row of every head; the 3-D branch of StatsQuantizer (one scale per row shared by the heads) "
    "is unused",
    paper="refimpl's specification of QKR: the 3-D StatsQ on the (H, D, D) products, s = 2·mean_h mean_j "
    "|W_qk[h, r, j]|, shape (1, D, 1), one scale per row shared by the heads",
    example=Example(
        args=(np.array([[[1.0, 2.0]], [[1.0, 2.0]]]), np.array([[[1.0, 3.0]], [[2.0, 1.0]]])),
        kwargs={"bits": 2},
        official={"w_qk": [[[1.0, 3.0], [2.0, 6.0]], [[2.25, 0.75], [4.5, 1.5]]]},
        reference={"w_qk": [[[0.875, 2.625], [1.75, 5.25]], [[2.625, 0.875], [5.25, 1.75]]]},
        note="W_qk = [[[1, 3], [2, 6]], [[2, 1], [4, 2]]]: per-head scales [[4, 8], [3, 6]], shared [3.5, 7]",
    ),
    flag={"per_head_scale": True},
)
