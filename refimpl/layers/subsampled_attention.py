"""Stochastically subsampled self-attention, SSA (The Information Pathways Hypothesis:
Transformers are Dynamic Self-Ensembles, Hussain, Zaki and Subramanian)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, BoolArray, FloatArray, Paper, array_namespace, op

__all__ = ["PAPER", "subsampled_attention"]

PAPER = Paper(
    "The Information Pathways Hypothesis: Transformers are Dynamic Self-Ensembles",
    arxiv="2306.01705",
    year=2023,
)


def _check_mask(arguments) -> None:
    mask = arguments["S"]
    xp = array_namespace(mask)
    empty = ~xp.any(mask, axis=-1)
    if bool(xp.any(empty)):
        b, h, i = (int(c[0]) for c in xp.nonzero(empty))
        raise ArgumentError(
            "S",
            "every query row keeps at least one key (the softmax over an empty set is undefined)",
            f"row S[{b}, {h}, {i}] is all False",
        )


@op(
    inputs={
        "q": FloatArray("B", "H", "N", "Dk"),
        "k": FloatArray("B", "H", "M", "Dk"),
        "v": FloatArray("B", "H", "M", "Dv"),
        "S": BoolArray("B", "H", "N", "M"),
    },
    outputs=("o",),
    differentiable=("q", "k", "v"),
    check=_check_mask,
)
def subsampled_attention(q, k, v, S):
    r"""Scaled dot-product attention restricted to a sampled subset of keys per query (SSA).

    During training SSA lets every query attend to a random subset ``S_i`` of the keys only;
    the softmax renormalizes over the subset, so no rescaling is needed, and an attention
    pattern sampled anew each step trains the network's sparse "information pathways" while
    cutting the cost of attention. At inference one runs full attention (an all-true mask) or
    averages several subsampled passes (an ensemble). The sampled subset is an input here.

    Forward, per batch element and head, with ``s_ij = q_i·k_j/√d_k``::

        m_i  = max_{j∈S_i} s_ij                       (subtract it: exp cannot overflow)
        A_ij = exp(s_ij − m_i) / Σ_{l∈S_i} exp(s_il − m_i)   for j ∈ S_i,  0 otherwise
        o_i  = Σ_j A_ij v_j

    Masking and scaling conventions: ``S[b, h, i, j]`` True means query i sees key j (the
    additive −∞ mask of a softmax, written as a select: a dropped key contributes exactly 0,
    never ``exp(−∞)`` arithmetic); no causal mask beyond what S holds; scale ``1/√d_k``
    (the transformer's scaled dot-product attention, which SSA subsamples).

    Backward. Let ``G = ∂L/∂o``. ``o = A V`` gives ``V̄ = Aᵀ G`` and ``Ā = G Vᵀ``. The row
    softmax over S_i has the Jacobian ``∂A_ij/∂s_il = A_ij(δ_jl − A_il)`` on the subset (and
    the dropped entries are constant 0), so::

        s̄_il = A_il (Ā_il − Σ_j A_ij Ā_ij)         (0 where l ∉ S_i, since A_il = 0)
        q̄ = s̄ K / √d_k,   k̄ = s̄ᵀ Q / √d_k,   v̄ = Aᵀ G

    Args:
        q: queries (B, H, N, d_k), float32 or float64.
        k: keys (B, H, M, d_k).
        v: values (B, H, M, d_v).
        S: the sampled key subsets (B, H, N, M), boolean; every row at least one True.
            How S is drawn (the paper's unstructured or locally biased subsampling) is the
            caller's: the sampling distribution is not pinned (the official code was not
            released), so the op takes the mask and draws nothing.

    Returns:
        o: (B, H, N, d_v), the dtype of q.

    Reference: Hussain, Zaki and Subramanian, *The Information Pathways Hypothesis:
    Transformers are Dynamic Self-Ensembles*, KDD 2023, arXiv:2306.01705 (§4, SSA).

    >>> import numpy as np, refimpl
    >>> q = np.zeros((1, 1, 1, 1)); k = np.zeros((1, 1, 3, 1))  # equal scores
    >>> v = np.array([1.0, 2.0, 6.0]).reshape(1, 1, 3, 1)
    >>> S = np.array([True, False, True]).reshape(1, 1, 1, 3)  # keys 0 and 2: mean of 1 and 6
    >>> refimpl.layers.subsampled_attention(q, k, v, S).ravel()
    array([3.5])
    """
    scale = 1 / np.sqrt(q.shape[-1])
    scores = (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    row_max = np.max(np.where(S, scores, -np.inf), axis=-1, keepdims=True)  # finite: S_i not empty
    weights = np.where(S, np.exp(np.where(S, scores - row_max, 0)), 0).astype(q.dtype)
    A = weights / weights.sum(axis=-1, keepdims=True)
    o = A @ v
    return o, (q, k, v, A, scale)


@subsampled_attention.defvjp
def subsampled_attention_backward(residuals, g_o):
    q, k, v, A, scale = residuals
    g_v = np.swapaxes(A, -1, -2) @ g_o
    g_A = g_o @ np.swapaxes(v, -1, -2)
    g_scores = A * (g_A - (A * g_A).sum(axis=-1, keepdims=True))
    g_scores *= q.dtype.type(scale)
    g_q = g_scores @ k
    g_k = np.swapaxes(g_scores, -1, -2) @ q
    return g_q, g_k, g_v
