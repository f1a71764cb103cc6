"""ExcelFormer's semi-permeable attention, GLU tokenizer and tanh-GLU feed-forward
(ExcelFormer: Can a DNN be a Sure Bet for Tabular Prediction?)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Example, FloatArray, IntScalar, RealScalar, known_deviation, op
from ..regularizers.feat_mix import PAPER

__all__ = ["PAPER", "glu_tokenizer", "semi_permeable_attention", "tanh_glu"]


def _tanh_gate(a, b):
    """``a ⊙ tanh(b)`` and ``tanh(b)`` (kept for the backward)."""
    t = np.tanh(b)
    return a * t, t


def _tanh_gate_backward(g, a, t):
    """Cotangents of ``a`` and ``b`` in ``a ⊙ tanh(b)``: ``ḡ ⊙ t`` and ``ḡ ⊙ a ⊙ (1 − t²)``."""
    return g * t, g * a * (1 - t * t)


# -- tanh-GLU ----------------------------------------------------------------------------------
def _check_even(arguments) -> None:
    width = arguments["x"].shape[-1]
    if width % 2:
        raise ArgumentError("x", "an even last dimension 2d (the halves [a, b])", f"last dimension {width}")


@op(inputs={"x": FloatArray("...", "D2")}, outputs=("out",), differentiable=("x",), check=_check_even)
def tanh_glu(x):
    r"""ExcelFormer's "attentive" feed-forward gate: ``a ⊙ tanh(b)`` of the two halves of x.

    ExcelFormer replaces the Transformer FFN's ReLU by a GLU whose gate is ``tanh``: a
    linear map d → 2d (outside the op) produces ``x = [a, b]``, and the gate ``tanh(b)``
    scales ``a`` feature by feature, smoothly and with either sign.

    Forward, with ``x = [a, b]`` split in two halves of d along the last axis (the first half
    is the value, the second the gate, as ``x.chunk(2, dim=-1)`` in the official ``tanglu``)::

        out = a ⊙ tanh(b)

    Backward. With ``t = tanh(b)`` and ``dt/db = 1 − t²``, the product rule gives::

        ā = ḡ ⊙ t,    b̄ = ḡ ⊙ a ⊙ (1 − t²),    x̄ = [ā, b̄]

    ``1 − t²`` is formed from the saved t (no second tanh); it is exactly 0 where t rounds to
    ±1, the true derivative being below the dtype's resolution there.

    Args:
        x: (..., 2d), float32 or float64; the last dimension must be even.

    Returns:
        out: (..., d), the dtype of x.

    Reference: Chen et al., *ExcelFormer: Can a DNN be a Sure Bet for Tabular Prediction?*,
    KDD 2024, arXiv:2301.02819 (§3, the attentive FFN); official code WhatAShot/ExcelFormer,
    ``lib/deep.py`` ``tanglu`` (``a, b = x.chunk(2, dim=-1); a * torch.tanh(b)``), used as
    ``get_activation_fn('tanglu')`` in ``bin/excel_former.py``.

    >>> import numpy as np, refimpl
    >>> refimpl.layers.tanh_glu(np.array([2.0, 3.0, 0.0, np.log(2.0)]))  # tanh(log 2) = 3/5
    array([0. , 1.8])
    """
    d = x.shape[-1] // 2
    a, b = x[..., :d], x[..., d:]
    out, t = _tanh_gate(a, b)
    return out, (a, t)


@tanh_glu.defvjp
def tanh_glu_backward(residuals, g_out):
    a, t = residuals
    g_a, g_b = _tanh_gate_backward(g_out, a, t)
    return (np.concatenate([g_a, g_b], axis=-1),)


# -- GLU tokenizer -----------------------------------------------------------------------------
@op(
    inputs={
        "x": FloatArray("B", "F"),
        "W1": FloatArray("F", "D"),
        "b1": FloatArray("F", "D"),
        "W2": FloatArray("F", "D"),
        "b2": FloatArray("F", "D"),
    },
    outputs=("tokens",),
    differentiable=("x", "W1", "b1", "W2", "b2"),
)
def glu_tokenizer(x, W1, b1, W2, b2):  # noqa: N803 - the paper's names
    r"""ExcelFormer's GLU tokenizer: each numerical feature becomes a d-dimensional token.

    A feature-wise affine embedding (as FT-Transformer's) gated by a second one through
    ``tanh``: feature j of row i, a scalar, gives the token
    ``E_ij = (x_ij W1_j + b1_j) ⊙ tanh(x_ij W2_j + b2_j)`` with its own W·_j, b·_j ∈ R^d.

    Forward, per row i, feature j and channel k::

        u_ijk = x_ij W1_jk + b1_jk
        v_ijk = x_ij W2_jk + b2_jk
        E_ijk = u_ijk · tanh(v_ijk)

    Backward. With ``t = tanh(v)``, ``ū = Ē ⊙ t`` and ``v̄ = Ē ⊙ u ⊙ (1 − t²)`` (as ``tanh_glu``);
    u and v are affine in x_ij with slopes W1_j, W2_j, so::

        x̄_ij   = Σ_k (ū_ijk W1_jk + v̄_ijk W2_jk)
        W̄1_jk  = Σ_i ū_ijk x_ij,    b̄1_jk = Σ_i ū_ijk
        W̄2_jk  = Σ_i v̄_ijk x_ij,    b̄2_jk = Σ_i v̄_ijk

    Categorical features (an embedding table in the official ``Tokenizer``) are not part of
    the op; the official model asserts ``x_cat is None``. The official init (attenuated Kaiming
    uniform for W1, W2, Kaiming uniform for the biases) is the caller's.

    Args:
        x: numerical features (B, F), float32 or float64, in importance order if the tokens feed
            ``semi_permeable_attention``.
        W1, b1: value embedding (F, d) (official ``weight``, ``bias``).
        W2, b2: gate embedding (F, d) (official ``weight2``, ``bias2``).

    Returns:
        tokens: (B, F, d), the dtype of x.

    Reference: Chen et al., *ExcelFormer*, arXiv:2301.02819 (§3, GLU-based embedding); official
    code WhatAShot/ExcelFormer, ``bin/excel_former.py`` ``Tokenizer.forward``
    (``x1 = weight * x + bias; x2 = weight2 * x + bias2; x1 * tanh(x2)``).

    >>> import numpy as np, refimpl
    >>> one = np.ones((1, 1))
    >>> refimpl.layers.glu_tokenizer(np.array([[2.0]]), one, one, one / 2, 0 * one)  # 3 · tanh(1)
    array([[[2.28478247]]])
    """
    xs = x[:, :, None]
    u = xs * W1 + b1
    tokens, t = _tanh_gate(u, xs * W2 + b2)
    return tokens, (x, W1, W2, u, t)


@glu_tokenizer.defvjp
def glu_tokenizer_backward(residuals, g_tokens):
    x, W1, W2, u, t = residuals
    g_u, g_v = _tanh_gate_backward(g_tokens, u, t)
    g_x = (g_u * W1).sum(axis=-1) + (g_v * W2).sum(axis=-1)
    xs = x[:, :, None]
    return g_x, (g_u * xs).sum(axis=0), g_u.sum(axis=0), (g_v * xs).sum(axis=0), g_v.sum(axis=0)


# -- semi-permeable attention ------------------------------------------------------------------
def _check_heads(arguments) -> None:
    width, heads = arguments["x"].shape[-1], arguments["n_heads"]
    if width % heads:
        raise ArgumentError("n_heads", f"a divisor of the token width d = {width}", f"n_heads = {heads}")


def semi_permeable_mask(n_features):
    """``allowed[i, j] = j ≤ i``: feature i reads the features at least as informative as itself."""
    index = np.arange(n_features)
    return index[None, :] <= index[:, None]


def _split_heads(z, heads):
    """(B, F, d) → (B, H, F, d/H): head h holds channels h·d/H … (h+1)·d/H − 1 (official ``_reshape``)."""
    batch, features, width = z.shape
    return z.reshape(batch, features, heads, width // heads).transpose(0, 2, 1, 3)


def _merge_heads(z):
    batch, heads, features, width = z.shape
    return z.transpose(0, 2, 1, 3).reshape(batch, features, heads * width)


@op(
    inputs={
        "x": FloatArray("B", "F", "D"),
        "W_q": FloatArray("D", "D"),
        "b_q": FloatArray("D"),
        "W_k": FloatArray("D", "D"),
        "b_k": FloatArray("D"),
        "W_v": FloatArray("D", "D"),
        "b_v": FloatArray("D"),
        "n_heads": IntScalar(1),
        "mask_value": RealScalar(high=0, high_open=True, optional=True),
    },
    outputs=("y",),
    differentiable=("x", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v"),
    check=_check_heads,
)
def semi_permeable_attention(x, W_q, b_q, W_k, b_k, W_v, b_v, *, n_heads, mask_value=None):  # noqa: N803
    r"""ExcelFormer's semi-permeable attention: feature i attends only to features ranked ≤ i.

    The numerical features are sorted by their mutual information with the label, descending
    (upstream, once: ``run_default_config_excel.py`` reorders ``X_num`` by
    ``np.argsort(-mi_scores)``), so token 0 is the most informative. The attention mask is causal
    in that order: a token reads the tokens at least as informative as itself, never the less
    informative ones, so noise in uninformative features cannot leak into informative tokens,
    while uninformative tokens may borrow from informative ones.

    Forward (self-attention: queries, keys and values from the same tokens; torch layout
    ``z W_ᵀ + b``), with H heads of width d_h = d/H, head h the channels h·d_h … (h+1)·d_h − 1::

        Q = x W_qᵀ + b_q,  K = x W_kᵀ + b_k,  V = x W_vᵀ + b_v         (B, F, d), split per head
        s_ij = q_i · k_j / √d_h                                         (per batch, per head)
             = q_i · k⁰_j / √d_h + q_i · b_k / √d_h,      K⁰ = x W_kᵀ
        A_ij = exp(s_ij − m_i) / Σ_{l ≤ i} exp(s_il − m_i)  for j ≤ i,  0 for j > i
        m_i  = max_{j ≤ i} s_ij                                         (exp cannot overflow)
        y_i  = Σ_j A_ij v_j,   heads concatenated back to (B, F, d)

    The key bias only adds ``q_i · b_k / √d_h`` to every score of query i, a constant per row
    that the softmax cancels (with either mask): the code forms the scores from ``K⁰ = x W_kᵀ``,
    so y does not depend on b_k in any rounding either. (Adding b_k first would let a large b_k
    swamp ``x W_kᵀ`` in K; the official code adds it, the difference being rounding only.)

    Masking: ``allowed[i, j] = (j ≤ i)`` (``semi_permeable_mask``, the official
    ``get_attention_mask``: ``arange[None, :] <= arange[:, None]``), the diagonal always allowed,
    so no row is empty. By default the mask has −∞ semantics: masked keys contribute exactly 0
    (a select, no ``exp(−∞)`` arithmetic). ``mask_value=-1e4`` reproduces the official additive
    mask, ``softmax(s + M)`` over all keys with ``M_ij = mask_value`` for j > i: the same up to
    ``exp(−1e4)`` = 0 unless the allowed scores lie ~1e4 below a masked one (deviation
    ``excelformer-additive-mask-1e4``). Scaling: ``1/√d_h`` with the head width (official
    ``/ math.sqrt(d_head_key)``).

    Not part of the op: the output projection W_out (the official layer has one when H > 1: a
    plain linear map of y), attention dropout (0.3 in the official config; a sampled mask
    would be an input) and key/value compression (unused in the official configs).

    Backward. Let ``G = ∂L/∂y`` split per head. ``y = A V`` gives ``V̄ = Aᵀ G`` and
    ``Ā = G Vᵀ``. The row softmax has ``∂A_ij/∂s_il = A_ij (δ_jl − A_il)`` (over the allowed
    keys; with the additive mask over all keys, M being a constant), so::

        s̄_il = A_il (Ā_il − Σ_j A_ij Ā_ij)            (0 where A_il = 0)
        Q̄ = s̄ K / √d_h,   K̄ = s̄ᵀ Q / √d_h,   V̄ = Aᵀ G      (heads merged back to (B, F, d))
        x̄ = Q̄ W_q + K̄ W_k + V̄ W_v
        W̄_q = Σ_{b,i} Q̄_biᵀ x_bi,  b̄_q = Σ_{b,i} Q̄_bi      (likewise for k and v)

    Each row of s̄ sums to zero (``Σ_l s̄_il = Σ_l A_il Ā_il − Σ_l A_il · Σ_j A_ij Ā_ij = 0``, as
    ``Σ_l A_il = 1``), which the code uses twice:

    * ``Q̄_i = Σ_l s̄_il k_l / √d_h = Σ_l s̄_il k⁰_l / √d_h``: the code multiplies by K⁰. With K
      the rounding error of ``Σ_l s̄_il`` (≈ ε |Ā|, not 0) would be multiplied by b_k, and
      a key bias of 1e30 would give Q̄ ~ 1e21 where the true value is O(1).
    * ``b̄_k = Σ_{b,l} K̄_bl = Σ_{b,i} q_bi Σ_l s̄_bil / √d_h = 0``: returned as exact zeros (the
      forward does not depend on b_k).

    Args:
        x: tokens (B, F, d), float32 or float64, features in importance order (most informative
            first).
        W_q, W_k, W_v: projections (d, d), torch layout (official ``nn.Linear(d, d)``; init
            attenuated Kaiming uniform with init_scale 0.01, biases zero).
        b_q, b_k, b_v: their biases (d,).
        n_heads: number of heads H, a divisor of d; required (the official default config uses
            32 heads with d_token 256, a choice tied to d).
        mask_value: None (default) for −∞ semantics; a negative number for the official
            additive mask (−1e4 in ``get_attention_mask``).

    Returns:
        y: (B, F, d), the dtype of x (before the output projection).

    Reference: Chen et al., *ExcelFormer*, arXiv:2301.02819 (§3, semi-permeable attention);
    official code WhatAShot/ExcelFormer, ``bin/excel_former.py`` ``MultiheadAttention``
    (``get_attention_mask``, ``forward``).

    >>> import numpy as np, refimpl
    >>> x = np.array([[[1.0], [3.0]]]); one, zero = np.ones((1, 1)), np.zeros(1)
    >>> # W_q = 0: equal scores; token 0 reads itself, token 1 the mean of both values
    >>> refimpl.layers.semi_permeable_attention(x, 0 * one, zero, one, zero, one, zero, n_heads=1)
    array([[[1.],
            [2.]]])
    """
    heads = n_heads
    q = _split_heads(x @ W_q.T + b_q, heads)
    k = _split_heads(x @ W_k.T, heads)  # K⁰: the key bias shifts each score row by a constant
    v = _split_heads(x @ W_v.T + b_v, heads)
    scale = x.dtype.type(1 / np.sqrt(q.shape[-1]))
    scores = (q @ np.swapaxes(k, -1, -2)) * scale
    allowed = semi_permeable_mask(x.shape[1])
    if mask_value is None:  # −∞ semantics: the masked keys are left out of the max and the sum
        row_max = np.max(np.where(allowed, scores, -np.inf), axis=-1, keepdims=True)  # finite: j = i allowed
        weights = np.where(allowed, np.exp(np.where(allowed, scores - row_max, 0)), 0).astype(x.dtype)
    else:  # the official additive mask: softmax(s + M) over every key
        shifted = scores + np.where(allowed, 0, mask_value).astype(x.dtype)
        weights = np.exp(shifted - shifted.max(axis=-1, keepdims=True))
    A = weights / weights.sum(axis=-1, keepdims=True)
    y = _merge_heads(A @ v)
    return y, (x, W_q, W_k, W_v, q, k, v, A, scale)


@semi_permeable_attention.defvjp
def semi_permeable_attention_backward(residuals, g_y):
    x, W_q, W_k, W_v, q, k, v, A, scale = residuals  # k is K⁰ = x W_kᵀ (split per head)
    g = _split_heads(g_y, q.shape[1])
    g_v = np.swapaxes(A, -1, -2) @ g
    g_A = g @ np.swapaxes(v, -1, -2)
    g_scores = A * (g_A - (A * g_A).sum(axis=-1, keepdims=True)) * scale
    g_q = _merge_heads(g_scores @ k)  # s̄ K⁰ = s̄ K: the rows of s̄ sum to zero
    g_k = _merge_heads(np.swapaxes(g_scores, -1, -2) @ q)
    g_v = _merge_heads(g_v)
    g_x = g_q @ W_q + g_k @ W_k + g_v @ W_v
    width = x.shape[-1]
    rows = x.reshape(-1, width)
    g_q, g_k, g_v = (g_z.reshape(-1, width) for g_z in (g_q, g_k, g_v))
    g_b_k = np.zeros(width, dtype=x.dtype)  # Σ_l s̄_il = 0: the key bias does not reach y
    return (
        g_x,
        g_q.T @ rows,
        g_q.sum(axis=0),
        g_k.T @ rows,
        g_b_k,
        g_v.T @ rows,
        g_v.sum(axis=0),
    )


known_deviation(
    semi_permeable_attention,
    name="excelformer-additive-mask-1e4",
    source="WhatAShot/ExcelFormer, bin/excel_former.py, MultiheadAttention.get_attention_mask "
    "(`(1.0 - attention_mask.float()) * -1e4`, added to the scores before F.softmax)",
    official="adds −1e4 to the scores of the less informative keys: they get exactly zero weight after "
    "the max shift as long as some allowed score is within ~1e4 of the largest masked one, but a query "
    "whose allowed scores all lie far below a masked score attends to the masked (less informative) key",
    paper="the mask forbids attending to less informative features (M_ij = −∞ for j > i): the weights "
    "of the masked keys are exactly 0 for every score",
    example=Example(
        args=(
            np.array([[[1.0], [0.0]]]),
            np.ones((1, 1)),
            np.zeros(1),
            np.full((1, 1), -2e4),
            np.zeros(1),
            np.ones((1, 1)),
            np.zeros(1),
        ),
        kwargs={"n_heads": 1},
        official={"y": [[[0.0], [0.5]]]},
        reference={"y": [[[1.0], [0.5]]]},
        note="s_00 = q_0 k_0 = −2e4 (allowed), s_01 = q_0 k_1 = 0 (masked): −1e4 beats −2e4, so token 0 "
        "reads token 1's value 0 instead of its own value 1",
    ),
    flag={"mask_value": -1e4},
)
