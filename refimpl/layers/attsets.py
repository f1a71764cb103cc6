"""AttSets attentional set aggregation (Robust Attentional Aggregation of Deep Feature Sets for
Multi-view 3D Reconstruction, Yang, Wang, Markham and Trigoni)."""

from __future__ import annotations

from ..authoring import ArgumentError, BoolArray, FloatArray, Paper, array_namespace, op

__all__ = ["PAPER", "attsets_pooling"]

PAPER = Paper(
    "Robust Attentional Aggregation of Deep Feature Sets for Multi-view 3D Reconstruction",
    arxiv="1808.00758",
    year=2020,
    code="Yang7879/AttSets",
)


def _check_mask(arguments) -> None:
    mask = arguments["mask"]
    if mask is None:
        return
    xp = array_namespace(mask)
    empty = ~xp.any(mask, axis=-1)
    if bool(xp.any(empty)):
        row = int(xp.nonzero(empty)[0][0])
        raise ArgumentError(
            "mask",
            "every set keeps at least one element (the softmax over an empty set is undefined)",
            f"mask[{row}] is all False",
        )


@op(
    inputs={
        "X": FloatArray("B", "N", "D"),
        "W": FloatArray("D", "D"),
        "b": FloatArray("D"),
        "mask": BoolArray("B", "N", optional=True),
    },
    outputs=("o",),
    differentiable=("X", "W", "b"),
    check=_check_mask,
)
def attsets_pooling(X, W, b, mask=None):  # noqa: N803 - the paper's names
    r"""AttSets: a permutation-invariant weighted sum of a feature set, weights per feature.

    A set of N feature vectors (one per view of an object) is pooled into one vector. Each
    element scores itself with a shared linear map, ``C = X W + b``, and the scores of each
    feature d are normalized by a softmax over the SET (not over the features), so every
    feature channel picks its own mixture of the elements; the output is the per-feature
    weighted sum. The result does not depend on the order of the elements nor, beyond the
    weights, on how many there are.

    Forward, per set (batch element) and feature d, over the elements n present in the set
    (``mask[n]`` True; every element when mask is None)::

        C⁰ = X W                               (official layout: W is (in, out), ``tf.matmul(x, w)``)
        m_d  = max_n C⁰_nd                     (subtract it: exp cannot overflow)
        S_nd = exp(C⁰_nd − m_d) / Σ_{n'} exp(C⁰_n'd − m_d),   0 for the masked elements
        o_d  = Σ_n S_nd X_nd

    The bias adds b_d to every score of feature d, a constant over the set axis that the
    softmax cancels: ``C = X W + b`` and ``C⁰`` give the same S, so the code leaves b out of
    the scores (a huge b would otherwise swamp X W in floating point). The official code does
    add b (``tools.Ops.fc``, zero-initialized); the difference is rounding only.

    Masking: ``mask[b, n]`` False removes element n from set b with −∞ semantics, written as
    a select (weight exactly 0, no ``exp(−∞)`` arithmetic; a 0 score would still give it
    weight). A set of one element gives S = 1 and o = its features.

    Backward. Let ``ō = ∂L/∂o``. With ``S̄_nd = ō_d X_nd`` from ``o_d = Σ_n S_nd X_nd`` and the
    softmax over n per feature, ``∂S_nd/∂C_n'd = S_nd (δ_nn' − S_n'd)``::

        C̄_nd = S_nd (S̄_nd − Σ_n' S_n'd S̄_n'd) = S_nd ō_d (X_nd − o_d)    (0 where masked)
        X̄ = ō ⊙ S + C̄ Wᵀ         (the direct term and the path through the scores)
        W̄ = Σ_sets Xᵀ C̄
        b̄_d = Σ_sets Σ_n C̄_nd = Σ_sets ō_d (Σ_n S_nd X_nd − o_d Σ_n S_nd) = 0

    ``b̄`` is returned as exact zeros (the forward does not depend on b), and C̄ is formed as
    ``S ō (X − o)`` from the saved S and o.

    Args:
        X: the feature sets (B, N, D), float32 or float64; one set of N elements is B = 1.
        W: the score map (D, D), (in, out) layout (official ``att_w``, Xavier init; the official
            ``attsets_fc(x, out_ele_num=1)``, whose fc has D·out_ele_num = D outputs).
        b: its bias (D,) (official ``att_b``, zero init); no effect on o, see above.
        mask: optional (B, N) boolean, True for the elements present in each set (variable
            set sizes); every set keeps at least one. None: every element present (the
            official code's fixed-size sets).

    Returns:
        o: the pooled features (B, D), the dtype of X.

    Reference: Yang et al., *Robust Attentional Aggregation of Deep Feature Sets for
    Multi-view 3D Reconstruction*, IJCV 2020, arXiv:1808.00758 (§3, the AttSets module);
    official code Yang7879/AttSets, ``main_AttSets.py`` ``attsets_fc`` (option 1, linear
    scores: ``tools.Ops.fc``, then ``tf.nn.softmax(weights_1st, 1)`` over the set axis and
    ``tf.reduce_sum(x_1st * weights_1st, axis=1)``); the commented-out option 2 (tanh of the
    scores) is not implemented.

    >>> import numpy as np, refimpl
    >>> X = np.array([[[1.0, 0.0], [5.0, np.log(3.0)]]])  # a set of two elements
    >>> W = np.array([[0.0, 0.0], [1.0, 0.0]])  # feature 0 scored by X_n1: weights 1/4, 3/4
    >>> refimpl.layers.attsets_pooling(X, W, np.zeros(2))  # [1/4 + 15/4, (0 + log 3)/2]
    array([[4.        , 0.54930614]])
    """
    xp = array_namespace(X)
    scores = X @ W  # C⁰: the bias is constant over the set axis
    if mask is None:
        present = xp.ones(X.shape[:2], dtype=bool)
    else:
        present = mask
    present = present[:, :, None]
    # subtract the per-feature max over the present elements: exp cannot overflow
    top = xp.max(xp.where(present, scores, -xp.inf), axis=1, keepdims=True)
    weights = xp.where(present, xp.exp(xp.where(present, scores - top, 0)), 0).astype(X.dtype)
    S = weights / weights.sum(axis=1, keepdims=True)
    o = (S * X).sum(axis=1)
    return o, (X, W, S, o)


@attsets_pooling.defvjp
def attsets_pooling_backward(residuals, g_o):
    X, W, S, o = residuals
    xp = array_namespace(X)
    g_o = g_o[:, None, :]
    g_scores = S * g_o * (X - o[:, None, :])  # C̄ = S ō (X − o)
    g_X = g_o * S + g_scores @ W.T
    width = X.shape[-1]
    g_W = X.reshape(-1, width).T @ g_scores.reshape(-1, width)
    g_b = xp.zeros(width, dtype=X.dtype)  # Σ_n C̄_nd = 0: the bias does not reach o
    return g_X, g_W, g_b
