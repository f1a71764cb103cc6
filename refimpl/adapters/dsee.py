"""DSEE: a LoRA branch plus a sparse trainable update on a fixed support, and the support's
choice by a GreBsmo low-rank + sparse decomposition (Dually Sparsity-embedded Efficient Tuning)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, BoolArray, FloatArray, IntScalar, OneOf, Paper, RealScalar, op
from .lora import lora_linear

__all__ = ["PAPER", "dsee_linear", "dsee_sparse_support"]

PAPER = Paper(
    "DSEE: Dually Sparsity-embedded Efficient Tuning of Pre-trained Language Models",
    arxiv="2111.00160",
    year=2023,
    code="VITA-Group/DSEE",
)


@op(
    inputs={
        "x": FloatArray("...", "I"),
        "W": FloatArray("O", "I"),
        "A": FloatArray("R", "I"),
        "B": FloatArray("O", "R"),
        "S": FloatArray("O", "I"),
        "mask": BoolArray("O", "I"),
        "bias": FloatArray("O", optional=True),
        "scale": RealScalar(),
    },
    outputs=("y",),
    differentiable=("x", "A", "B", "S"),
)
def dsee_linear(x, W, A, B, S, mask, bias=None, *, scale):
    r"""DSEE's adapted linear layer: frozen W, a LoRA branch and a sparse update on a fixed support Ω.

    DSEE tunes a pre-trained weight with two parameter-efficient updates at once: a low-rank
    product ``B A`` (LoRA) and a sparse matrix ``S`` whose support Ω (a few entries, chosen
    once by ``dsee_sparse_support``) is fixed before training; S starts at 0 and only its
    entries on Ω are trained (the official code masks it with ``torch.nn.utils.prune``).
    BOTH branches are multiplied by the LoRA scale ``s = lora_alpha / lora_r``.

    Forward (torch layout, every leading dimension of x a row)::

        y = x Wᵀ + b + s·[(x Aᵀ) Bᵀ + x (S ⊙ Ω)ᵀ]
          = x W_effᵀ + s·(x Aᵀ) Bᵀ + b,        W_eff = W + s·(S ⊙ Ω)

    evaluated in the second form: the sparse branch is folded into the frozen weight (one
    (out, in) elementwise pass) and the rest is ``lora_linear`` with ``W_eff``.

    Backward. Let ``G = ∂L/∂y`` (rows g). W, b and Ω are frozen.

    1. The LoRA branch is ``lora_linear``'s: with ``h = x Aᵀ``, ``B̄ = s·Gᵀ H`` and
       ``Ā = s·(G B)ᵀ X``.
    2. ``y_o`` depends on ``S_oj`` through ``s·Ω_oj S_oj x_j``: ``S̄ = s·(Gᵀ X) ⊙ Ω`` (zero off the
       support, so a gradient step never leaves Ω).
    3. x reaches y through W, the sparse branch and h:
       ``x̄ = G W + s·G (S ⊙ Ω) + s·(G B) A = G W_eff + s·(G B) A`` — ``lora_linear``'s x̄ with W_eff.

    Args:
        x: input (..., in), float32/float64.
        W: frozen weight (out, in).
        A: down-projection (r, in) (``query_lora_a.weight``).
        B: up-projection (out, r) (``query_lora_b.weight``).
        S: sparse update (out, in) (``query_lora_s.weight_orig``; initialized to 0); entries off
            Ω are ignored.
        mask: the support Ω (out, in), bool (``query_lora_s.weight_mask``).
        bias: frozen bias (out,), or None.
        scale: ``s = lora_alpha / lora_r``, required (official defaults lora_alpha = 32,
            lora_r = 4 in ``run_glue.py``; the released scripts use lora_r = 16).

    Returns:
        y: (..., out), the dtype of x.

    Reference: Chen, Chen, Chen, Awadallah, Wang, Cheng, *DSEE: Dually Sparsity-embedded Efficient
    Tuning of Pre-trained Language Models*, ACL 2023, arXiv:2111.00160; official code
    VITA-Group/DSEE, ``non-GPT-2/src/transformers/models/bert/modeling_bert.py``
    (``BertSelfAttention.forward``: ``query_lora_b(query_lora_a(h))·(lora_alpha/lora_r)`` and
    ``query_lora_s(h)·(lora_alpha/lora_r)`` added to the query/value projections).

    >>> import numpy as np, refimpl
    >>> x, W = np.array([[1.0, 2.0]]), np.eye(2)
    >>> A, B = np.array([[1.0, 0.0]]), np.array([[0.0], [1.0]])
    >>> S, mask = np.array([[3.0, 5.0], [0.0, 0.0]]), np.array([[True, False], [False, False]])
    >>> refimpl.adapters.dsee_linear(x, W, A, B, S, mask, scale=2.0)   # [1 + 2·3, 2 + 2·1]
    array([[7., 4.]])
    """
    scale = float(scale)
    W_eff = W + scale * np.where(mask, S, 0)  # the sparse branch folded into the frozen weight
    y, lora_residuals = lora_linear.forward(x, W_eff, A, B, bias, scale=scale)
    return y, (lora_residuals, x, mask, scale)


@dsee_linear.defvjp
def dsee_linear_backward(residuals, g_y):
    lora_residuals, x, mask, scale = residuals
    g_x, g_A, g_B = lora_linear.backward(lora_residuals, g_y)
    g_rows = g_y.reshape(-1, mask.shape[0])
    x_rows = x.reshape(-1, mask.shape[1])
    g_S = np.where(mask, scale * (g_rows.T @ x_rows), 0).astype(x.dtype, copy=False)  # s·(Gᵀ X) ⊙ Ω
    return g_x, g_A, g_B, g_S


def _check_support(arguments) -> None:
    W, num_sparse = arguments["W"], arguments["num_sparse"]
    if num_sparse > W.size:
        raise ArgumentError("num_sparse", f"at most the {W.size} entries of W", f"num_sparse = {num_sparse}")


@op(
    inputs={
        "W": FloatArray("O", "I"),
        "V0": FloatArray("R0", "I"),
        "num_sparse": IntScalar(1),
        "rounds": IntScalar(1),
        "alternations": IntScalar(1),
        "rows_per_round": IntScalar(1),
        "threshold": RealScalar(0),
        "ties": OneOf("keep_all", "first"),
    },
    outputs=("mask", "sparse"),
    check=_check_support,
)
def dsee_sparse_support(
    W, V0, *, num_sparse, rounds=100, alternations=2, rows_per_round=5, threshold=0.01, ties="keep_all"
):
    r"""DSEE's sparse support Ω: the N largest entries of the sparse part of ``W ≈ U V + S``.

    Before tuning, DSEE decomposes each pre-trained weight into a low-rank part and a sparse
    part with a GreBsmo-style greedy bilateral factorization, and lets the sparse update
    train only where the sparse part is largest. A construction run once per weight:
    reference-only, no VJP, no fast backend.

    Algorithm (official ``run_glue.py``, ``sparse_method == 'grebsmo'``), with V0 the random
    initial row factor (official ``torch.randn((1, in))``; the random U0 it also draws is
    overwritten before use)::

        V = V0
        repeat `rounds` times:                                   (official 100)
            S = 0
            repeat `alternations` times:                         (official 2)
                U = Q-factor of the reduced QR of (W − S) Vᵀ     (orthonormal columns)
                V = Uᵀ (W − S)
                S = W − U V;   S[|S| < threshold] = 0            (official threshold 0.01)
            E = W − U V − S
            V = [V; first `rows_per_round` rows of the R-factor of the reduced QR of E]   (official 5)
        q    = the (numel − N + 1)-th smallest |S| (torch.kthvalue), i.e. the N-th largest
        Ω    = |S| ≥ q

    ``U V = U Uᵀ (W − S)`` is the projection of W − S onto the span of (W − S) Vᵀ, so the
    result depends only on row spans, not on the sign convention of the QR (LAPACK's Householder
    QR in both NumPy and PyTorch). Computed in float64 whatever the input dtype.

    Tie rule (``ties``): ``"keep_all"`` (official) keeps every entry with ``|S| ≥ q``, so ties
    at the threshold keep MORE than N entries — in particular when S has fewer than N nonzero
    entries, q = 0 and Ω is the whole matrix; ``"first"`` keeps exactly N, breaking ties at q
    by the lowest row-major index.

    Args:
        W: the pre-trained weight (out, in), float32/float64 (the official loop decomposes the
            query and value projections only).
        V0: the initial row factor (r0, in), r0 ≥ 1 (official r0 = 1, standard normal).
        num_sparse: N = |Ω|, required (``--num_sparse``: default 128 in ``run_glue.py``, 16 and
            64 in the released scripts).
        rounds, alternations, rows_per_round, threshold: the GreBsmo schedule, official
            values 100, 2, 5 and 0.01 (hard-coded in ``run_glue.py``).
        ties: ``"keep_all"`` (official ``|S| ≥ q``) or ``"first"`` (exactly N).

    Returns:
        mask: Ω (out, in), bool.
        sparse: the final sparse part S (out, in) in the dtype of W.

    Reference: Chen et al., arXiv:2111.00160 (the sparse matrix initialization via
    GreBsmo); official code VITA-Group/DSEE,
    ``non-GPT-2/examples/pytorch/text-classification/run_glue.py`` (``apply_sparse`` block).

    One round by hand: V0 = [1, 0] spans the first row direction, so U = e1, U V = [[3, 0], [0, 0]]
    and the sparse part is what that direction does not explain:

    >>> import numpy as np, refimpl
    >>> W, V0 = np.diag([3.0, 0.5]), np.array([[1.0, 0.0]])
    >>> mask, sparse = refimpl.adapters.dsee_sparse_support(W, V0, num_sparse=1, rounds=1)
    >>> sparse, mask
    (array([[0. , 0. ],
           [0. , 0.5]]), array([[False, False],
           [False,  True]]))
    """
    W64 = W.astype(np.float64)
    V = V0.astype(np.float64)
    U = None
    S = np.zeros_like(W64)
    for _ in range(rounds):
        S = np.zeros_like(W64)
        for _ in range(alternations):
            low_rank_target = W64 - S
            U = np.linalg.qr(low_rank_target @ V.T, mode="reduced")[0]
            V = U.T @ low_rank_target
            S = W64 - U @ V
            S[np.abs(S) < threshold] = 0.0
        E = W64 - U @ V - S
        R = np.linalg.qr(E, mode="r")  # reduced: (min(out, in), in)
        V = np.concatenate([V, R[:rows_per_round]], axis=0)
    magnitude = np.abs(S).ravel()
    if ties == "keep_all":
        q = np.partition(magnitude, magnitude.size - num_sparse)[magnitude.size - num_sparse]
        mask = np.abs(S) >= q  # ties at q are all kept (torch.kthvalue, then >=)
    else:
        order = np.argsort(-magnitude, kind="stable")  # descending, lower index first among ties
        mask = np.zeros(magnitude.size, dtype=bool)
        mask[order[:num_sparse]] = True
        mask = mask.reshape(S.shape)
    return (mask, S.astype(W.dtype)), None
