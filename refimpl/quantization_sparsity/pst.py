"""PST: the parameter-efficient sparse weight, a low-rank update masked by a low-rank
importance score (Parameter-Efficient Sparsity for LLM fine-tuning, Li et al.)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "pst_masked_weight"]

PAPER = Paper(
    "Parameter-Efficient Sparsity for Large Language Models Fine-Tuning",
    arxiv="2205.11005",
    year=2022,
    code="yuchaoli/PST",
)


def pruned_count(sparsity: float, size: int) -> int:
    """``⌊s·mn⌋``, the number of entries the mask sets to 0 (in float64, as Python's ``int``)."""
    return int(math.floor(sparsity * size))


@op(
    inputs={
        "w": FloatArray("M", "N"),
        "u": FloatArray("M", "R"),
        "v": FloatArray("R", "N"),
        "a": FloatArray("M", "RM"),
        "b": FloatArray("RM", "N"),
        "r": FloatArray("M"),
        "c": FloatArray("N"),
        "sparsity": RealScalar(0, 1),
        "beta": RealScalar(),
        "alpha1": RealScalar(),
        "alpha2": RealScalar(),
    },
    outputs=("w_eff",),
    differentiable=("u", "v", "a", "b", "r", "c"),
    custom_vjp="straight-through mask: the binary mask passes its cotangent G⊙W̃ to the importance "
    "score S (identity STE), though the mask is piecewise constant in S",
)
def pst_masked_weight(w, u, v, a, b, r, c, *, sparsity, beta=1.0, alpha1=1.0, alpha2=1.0):
    r"""PST sparse weight: prune a LoRA-updated weight by a low-rank, trainable importance.

    Parameter-efficient sparse fine-tuning keeps the pretrained W frozen and learns two
    small things: a low-rank weight update ``β U V`` (as LoRA) and a data-driven importance
    that decides which entries survive. The importance is the magnitude of the updated
    weight plus a low-rank term ``A B`` and a structured term ``R 1ᵀ + 1 Cᵀ`` (one score
    per row and per column); the ``⌊s·mn⌋`` least important entries are masked.

    Forward (official ``SparseLinear``, yuchaoli/PST ``pst/sparse.py``)::

        W̃      = W + β U V                                   (m, n)
        S      = |W̃| + α₁ A B + α₂ (R 1ᵀ + 1 Cᵀ)              (importance; |·| of the UPDATED W̃)
        M_ij   = 0 for the ⌊s·mn⌋ smallest S_ij, 1 otherwise   (ties: lowest flat index pruned)
        W_eff  = M ⊙ W̃

    The official ``SparseBinarizer`` ranks with an unstable ``argsort``; here the ascending
    sort is stable, so among equal scores the lower row-major index is pruned first.

    Backward (custom: identity STE through the mask, ``SparseBinarizer.backward``). With
    ``G = W̄_eff``: the product rule on ``M ⊙ W̃`` gives ``W̃̄ ← G ⊙ M`` and ``M̄ = G ⊙ W̃``;
    the STE passes ``S̄ = M̄`` (the mask's true derivative is 0 almost everywhere); S
    depends on W̃ through ``|W̃|`` (``∂|x| = sign x``, sign 0 = 0), on A, B through a
    product, on R, C through broadcasts::

        S̄  = G ⊙ W̃
        W̃̄  = G ⊙ M + sign(W̃) ⊙ S̄
        Ū  = β W̃̄ Vᵀ,        V̄ = β Uᵀ W̃̄
        Ā  = α₁ S̄ Bᵀ,       B̄ = α₁ Aᵀ S̄
        R̄  = α₂ S̄ 1,        C̄ = α₂ S̄ᵀ 1

    W is frozen (no gradient).

    Args:
        w: frozen pretrained weight W (m, n), float32/float64.
        u: U (m, r) (official init N(0, 1), r = 8).
        v: V (r, n) (official init 0).
        a: A (m, r_m) (official init N(0, 1), r_m = 8).
        b: B (r_m, n) (official init 0).
        r: R (m,) row scores (official init 0).
        c: C (n,) column scores (official init 0).
        sparsity: s in [0, 1], the fraction pruned (required: a cubic schedule moves it
            from s_init to s_final during training, official ``pst/utils.py``).
        beta: β, the weight-update scale (default 1, official ``SparseLinear``).
        alpha1: α₁, the low-rank importance scale (default 1, official).
        alpha2: α₂, the row/column importance scale (default 1, official).

    Returns:
        w_eff: M ⊙ W̃ (m, n), in the dtype of the inputs.

    Reference: Li et al., *Parameter-Efficient Sparsity for Large Language Models
    Fine-Tuning*, IJCAI 2022, arXiv:2205.11005, §3; official yuchaoli/PST ``pst/sparse.py``
    (``SparseLinear``, ``SparseBinarizer``).

    >>> import numpy as np, refimpl
    >>> w = np.array([[1.0, -3.0], [0.5, 2.0]])
    >>> z = lambda *s: np.zeros(s)
    >>> refimpl.quantization_sparsity.pst_masked_weight(
    ...     w, z(2, 1), z(1, 2), z(2, 1), z(1, 2), z(2), z(2), sparsity=0.5)   # drop |w| 0.5 and 1
    array([[ 0., -3.],
           [ 0.,  2.]])
    """
    dtype = w.dtype.type
    w_tilde = w + dtype(beta) * (u @ v)
    importance = np.abs(w_tilde) + dtype(alpha1) * (a @ b) + dtype(alpha2) * (r[:, None] + c[None, :])
    mask = np.ones(w.shape, dtype=w.dtype)
    order = np.argsort(importance, axis=None, kind="stable")  # ascending; ties: lower flat index
    mask.flat[order[: pruned_count(sparsity, w.size)]] = 0
    w_eff = mask * w_tilde
    return w_eff, (w_tilde, mask, u, v, a, b, beta, alpha1, alpha2)


@pst_masked_weight.defvjp
def pst_masked_weight_backward(residuals, g_w_eff):
    w_tilde, mask, u, v, a, b, beta, alpha1, alpha2 = residuals
    dtype = w_tilde.dtype.type
    g_importance = g_w_eff * w_tilde  # S̄ = M̄ (identity STE through the mask)
    g_w_tilde = g_w_eff * mask + np.sign(w_tilde) * g_importance
    g_u = dtype(beta) * (g_w_tilde @ v.T)
    g_v = dtype(beta) * (u.T @ g_w_tilde)
    g_a = dtype(alpha1) * (g_importance @ b.T)
    g_b = dtype(alpha1) * (a.T @ g_importance)
    g_r = dtype(alpha2) * g_importance.sum(axis=1)
    g_c = dtype(alpha2) * g_importance.sum(axis=0)
    return g_u, g_v, g_a, g_b, g_r, g_c
