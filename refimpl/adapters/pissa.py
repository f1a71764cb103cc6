"""PiSSA: principal-singular-value initialization of a low-rank adapter (PiSSA paper)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Example, FloatArray, IntScalar, Paper, RealScalar, known_deviation, op

__all__ = ["pissa_init", "signs_of_largest_entries"]

PAPER = Paper(
    "PiSSA: Principal Singular Values and Singular Vectors Adaptation of Large Language Models",
    arxiv="2404.02948",
    year=2024,
    code="GraphPKU/PiSSA",
)


def check_rank(arguments) -> None:
    """``1 <= r <= min(out, in)`` for the rank ``r`` of a decomposition of ``W`` (out, in)."""
    out_features, in_features = arguments["W"].shape
    rank = arguments["r"]
    if rank > min(out_features, in_features):
        raise ArgumentError(
            "r",
            f"an integer 1 <= r <= min(out, in) = {min(out_features, in_features)} "
            f"(W has shape {(out_features, in_features)})",
            f"r = {rank}",
        )


def signs_of_largest_entries(V_r: np.ndarray) -> np.ndarray:
    """The sign of the largest-magnitude entry of each column of ``V_r`` (first one on ties).

    Multiplying column i of ``V_r`` and row i of ``Uh_r`` by ``signs[i]`` leaves
    ``V diag(S) Uh`` unchanged and makes that entry positive (scikit-learn's ``svd_flip``
    rule on the left vectors). A unit column has a nonzero largest entry, so no sign is 0.
    """
    pivot = np.argmax(np.abs(V_r), axis=0)
    return np.sign(V_r[pivot, np.arange(V_r.shape[1])])


@op(
    inputs={
        "W": FloatArray("O", "I"),
        "r": IntScalar(1),
        "scale": RealScalar(0, low_open=True),
    },
    outputs=("A", "B", "W_res"),
    check=check_rank,
)
def pissa_init(W, r, *, scale=1.0):
    r"""Initialize LoRA's factors from the top-r singular triplets of W; freeze the rest.

    Plain LoRA initializes A with random noise and B = 0, so the update ``s·B A`` starts at
    zero along random directions and the first steps train noise. PiSSA instead puts the
    principal part of the pretrained weight into the trainable factors and freezes the
    residual: the adapter starts with the directions that matter most, and the layer's
    output is unchanged at initialization
    (``W_res + s·B A = W``). Use the factors with ``lora_linear(x, W_res, A, B, scale=s)``.

    Forward (thin SVD; ``V`` holds the left vectors, ``Uh`` the right ones, as in PEFT)::

        W     = V diag(S) Uh         V (out, k), S (k,) descending, Uh (k, in), k = min(out, in)
        S'_r  = S_r / s              the first r singular values
        A     = diag(√S'_r) Uh_r     (r, in)
        B     = V_r diag(√S'_r)      (out, r)
        W_res = W − s·B A            (out, in), frozen

    Since ``s·B A = V_r diag(S_r) Uh_r``, ``s·B A`` is the truncated SVD — the best rank-r
    approximation of W in the spectral and Frobenius norms (Eckart–Young) — and
    ``W_res = Σ_{i>r} σ_i v_i uh_iᵀ`` holds the residual singular components:
    ``‖W_res‖₂ = σ_{r+1}`` (0 when r = rank W) and ``‖W_res‖_F² = Σ_{i>r} σ_i²``. ``A`` and ``B``
    share the singular values evenly (``√`` on each side), so both factors have the same scale.

    Sign convention. Singular vectors are defined only up to sign: ``(v_i, uh_i)`` and
    ``(−v_i, −uh_i)`` give the same W. The reference makes the largest-magnitude entry of
    each kept left vector ``v_i`` (column of ``V_r``) positive — the first such entry on a
    tie — flipping ``uh_i`` with it (scikit-learn's ``svd_flip``); every backend uses the
    same rule. Products (``s·B A``, ``W_res``) do not depend on it. With repeated singular
    values the vectors are defined only up to a rotation inside the repeated block; if the
    block straddles the cut (``σ_r = σ_{r+1}``) the best rank-r approximation itself is not
    unique, so ``s·B A`` then depends on the SVD routine (``W_res + s·B A = W`` still holds).
    Conformance therefore compares ``s·B A``, ``W_res`` and their sum, never the factors.

    Not differentiable: an initializer (the outputs are compared, no VJP).

    Computing dtype: the input dtype (float32 weights take a float32 SVD, the
    method's "upcast to float32 or better"; float16/bfloat16 are refused by validation, so
    the caller upcasts them explicitly). PEFT's implementation upcasts to float32 too.

    Args:
        W: the pretrained weight (out, in), float32 or float64, torch layout ``y = x Wᵀ``.
        r: the adapter rank, an integer with ``1 <= r <= min(out, in)``.
        scale: ``s = lora_alpha / r``, > 0 (PEFT's defaults lora_alpha = r = 8 give 1.0,
            the default here). Only ``s·B A`` is fixed by W; s splits it between the factors.

    Returns:
        A: (r, in), B: (out, r), W_res: (out, in), all in the dtype of W.

    Reference: Meng, Wang and Zhang, *PiSSA: Principal Singular Values and Singular Vectors
    Adaptation of Large Language Models*, arXiv:2404.02948; code GraphPKU/PiSSA and
    huggingface/peft (``init_lora_weights="pissa"``). The fast variant (randomized SVD with
    subspace iterations, ``"pissa_niter_k"``) is not this op.

    >>> import numpy as np, refimpl
    >>> W = np.array([[3.0, 0.0], [0.0, -1.0]])
    >>> A, B, W_res = refimpl.adapters.pissa_init(W, 1, scale=0.5)
    >>> A.round(6), B.round(6), W_res.round(12)
    (array([[2.44949, 0.     ]]), array([[2.44949],
           [0.     ]]), array([[ 0.,  0.],
           [ 0., -1.]]))
    """
    scale = float(scale)  # a Python float: it never promotes float32 arrays to float64
    V, S, Uh = np.linalg.svd(W, full_matrices=False)
    V_r, S_r, Uh_r = V[:, :r], S[:r], Uh[:r]
    signs = signs_of_largest_entries(V_r)
    V_r = V_r * signs
    Uh_r = Uh_r * signs[:, None]
    root_S = np.sqrt(S_r / scale)  # √S'_r
    A = root_S[:, None] * Uh_r
    B = V_r * root_S
    W_res = W - scale * (B @ A)
    return (A, B, W_res), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    pissa_init,
    name="peft-pissa-float32-only",
    source="huggingface/peft 0.21, peft/tuners/lora/layer.py, LoraLayer.pissa_init",
    official="refuses a float64 weight (TypeError: 'Please initialize PiSSA under float32, float16, or "
    "bfloat16') and runs the SVD in float32 for float16/bfloat16 weights too",
    paper="the SVD of W in its own precision; refimpl computes float64 weights in float64",
    example=Example(
        args=(np.array([[3.0, 1.0], [1.0, 2.0]]), 1),
        official={"raises": "TypeError"},
        reference={},
    ),
    convention=True,
)
