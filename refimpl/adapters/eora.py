"""EoRA: training-free low-rank compensation of a compressed weight in the input eigenspace (EoRA paper)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    FloatArray,
    IntScalar,
    OneOf,
    Paper,
    array_namespace,
    known_deviation,
    op,
)
from .pissa import check_rank

__all__ = ["eora_compensation"]

PAPER = Paper(
    "EoRA: Training-free Compensation for Compressed LLM with Eigenspace Low-Rank Approximation",
    arxiv="2410.21271",
    year=2024,
    code="NVlabs/EoRA",
)


def _check(arguments) -> None:
    check_rank(arguments)
    C = arguments["C"]
    xp = array_namespace(C)
    trace = float(xp.sum(xp.diagonal(C)))
    if not trace > 0:
        raise ArgumentError(
            "C",
            "an input covariance XᵀX with a positive trace (at least one positive eigenvalue; C = 0 "
            "means no calibration input reached the layer)",
            f"trace(C) = {trace:g}",
        )


def whitening_factor(C, dtype, negative_eigenvalues="zero", xp=np):
    """``Q' = Q Λ^{½}`` from ``C = Q Λ Qᵀ`` (float64 ``eigh``, lower triangle), cast to ``dtype``.

    Negative eigenvalues become 0 (``"zero"``: the nearest positive semidefinite matrix) or the
    smallest positive eigenvalue (``"smallest_positive"``: the official rule).
    """
    eigenvalues, Q = xp.linalg.eigh(C.astype(xp.float64))
    negative = eigenvalues < 0
    if bool(xp.any(negative)):
        if negative_eigenvalues == "zero":
            replacement = 0.0
        else:
            replacement = xp.min(xp.where(eigenvalues > 0, eigenvalues, xp.inf))
        eigenvalues = xp.where(negative, replacement, eigenvalues)
    return (Q * xp.sqrt(eigenvalues)).astype(dtype)


@op(
    inputs={
        "W": FloatArray("O", "I"),
        "W_c": FloatArray("O", "I"),
        "C": FloatArray("I", "I"),
        "r": IntScalar(1),
        "negative_eigenvalues": OneOf("zero", "smallest_positive"),
    },
    outputs=("A", "B", "W_eff"),
    check=_check,
)
def eora_compensation(W, W_c, C, r, *, negative_eigenvalues="zero"):
    r"""Rank-r factors ``B A`` that best restore a compressed layer's outputs on calibration data.

    Quantizing or pruning a weight W to ``W_c`` leaves an error ``ΔW = W − W_c``. A plain
    truncated SVD of ΔW minimizes ``‖ΔW − B A‖_F``, treating every input direction alike.
    What matters is the error of the layer's *outputs*, ``‖(ΔW − B A) Xᵀ‖_F``, on the inputs
    the layer actually sees. With ``C = Xᵀ X = Q Λ Qᵀ`` that error is
    ``‖(ΔW − B A) Q Λ^{½}‖_F``: project ΔW into the eigenspace of the inputs, scale each
    direction by how strongly the inputs excite it, truncate there (Eckart–Young), and map
    back. No training; the factors form a LoRA branch beside the compressed weight
    (``lora_linear(x, W_c, A, B, scale=1)`` computes ``x W_effᵀ``).

    Forward::

        ΔW    = W − W_c                         (out, in)
        C     = Q Λ Qᵀ                          eigh in float64; λ < 0 → 0 (see below)
        Q'    = Q Λ^{½}                         (in, in)
        ΔW Q' = U Σ Vᵀ                          thin SVD, Σ descending; keep r
        B     = U_r Σ_r^{½}                     (out, r)
        A     = Σ_r^{-½} U_rᵀ ΔW                (r, in)   [= Σ_r^{½} V_rᵀ Q'⁻¹ when C is invertible]
        W_eff = W_c + B A

    Why optimal: ``‖(ΔW − B A) Xᵀ‖_F² = tr((ΔW − B A) C (ΔW − B A)ᵀ) = ‖(ΔW − B A) Q'‖_F²``,
    and ``B A Q' = U_r U_rᵀ ΔW Q' = U_r Σ_r V_rᵀ`` is the best rank-r approximation of
    ``ΔW Q'``; the minimum output error is ``Σ_{i>r} σ_i²(ΔW Q')``. The scale of C is
    irrelevant: ``c·C`` multiplies Σ by ``√c``, B by ``c^{¼}``, A by ``c^{-¼}``, not ``B A``.

    Zero and negative eigenvalues. ``C = Xᵀ X`` is positive semidefinite: a negative computed
    eigenvalue is the rounding error of a zero one (an input direction no calibration row
    reaches: fewer rows than features, a dead feature). The reference sets it to 0 (the
    nearest positive semidefinite matrix to C). The official code replaces it by the smallest
    positive eigenvalue instead (``negative_eigenvalues="smallest_positive"``), which gives
    a direction the data never excites the weight of the weakest one it does: a rounding-level
    sign decides between two different answers. Zero eigenvalues are the official code's
    pitfall: its A is ``Σ_r^{½} V_rᵀ Q'⁻¹`` with ``Q'⁻¹ = Λ^{-½} Qᵀ``, and an exactly zero
    eigenvalue gives ``1/√0 = inf`` and NaN factors (a near-zero one, huge inaccurate ones).
    Since ``Σ_r V_rᵀ = U_rᵀ ΔW Q'``, the same A is ``Σ_r^{-½} U_rᵀ ΔW``, which needs no
    inverse of Q': the reference computes that. It equals the official A wherever C is
    invertible, and for a singular C it is the limit of A on the damped ``C + εI`` as
    ε → 0 (the SVD of ``ΔW Q'`` is continuous in ε; no damping argument is needed).
    ``B A = U_r U_rᵀ ΔW`` then also corrects the directions the data never excites, along
    the kept output directions; the output error on the calibration data is the same
    optimum. A component with ``σ_i = 0`` (r above the rank of ``ΔW Q'``) contributes
    nothing: its rows of A and columns of B are 0.

    Sign convention: the largest-magnitude entry of each kept column of U is made positive
    (first on ties). Conformance compares ``B A`` and ``W_eff``, never the factors.

    Not differentiable: a compensation (initializer). Computing dtype: the eigendecomposition
    in float64 (as officially), the SVD and the factors in the dtype of W.

    Args:
        W: the original weight (out, in), torch layout ``y = x Wᵀ``.
        W_c: the compressed (quantized or pruned) weight, same shape and dtype.
        C: the input covariance (in, in), ``Xᵀ X`` of the calibration activations X (N, in)
            or any positive multiple (the official code keeps a running average); only its
            lower triangle is read (``eigh``). Its trace must be positive.
        r: the compensation rank, ``1 <= r <= min(out, in)``.
        negative_eigenvalues: ``"zero"`` (default: C is a Gram matrix, its negative
            eigenvalues are rounding) or ``"smallest_positive"`` (the official code).

    Returns:
        A: (r, in), B: (out, r), W_eff = W_c + B A: (out, in), in the dtype of W.

    Reference: Liu et al., *EoRA: Training-free Compensation for Compressed LLM with
    Eigenspace Low-Rank Approximation* (later versions: "Fine-tuning-free"), arXiv:2410.21271;
    code NVlabs/EoRA, ``EoRA/eora.py``, ``llama_sequential_eigen`` (float64 ``eigh``,
    ``L[L < 0] = min(L[L > 0])``, ``B = U_r √Σ_r``, ``A = √Σ_r V_rᵀ Q'⁻¹``). The running
    average of ``XᵀX`` there has an irrelevant scale; the plain-SVD baseline is
    ``llama_sequential_svd``.

    >>> import numpy as np, refimpl
    >>> W, W_c = np.array([[2.0, 1.0]]), np.array([[1.0, 1.0]])   # ΔW = [[1, 0]]
    >>> C = np.diag([4.0, 1.0])
    >>> A, B, W_eff = refimpl.adapters.eora_compensation(W, W_c, C, 1)
    >>> A, B, W_eff        # ΔW Q' = [[2, 0]]: σ = 2, B = √2, A = [1, 0]/√2
    (array([[0.70710678, 0.        ]]), array([[1.41421356]]), array([[2., 1.]]))
    """
    delta = W - W_c
    Q_prime = whitening_factor(C, W.dtype, negative_eigenvalues)
    U, S, _ = np.linalg.svd(delta @ Q_prime, full_matrices=False)
    U_r, S_r = U[:, :r], S[:r]
    # the sign rule: the largest |U[o, i]| of each kept column (first on ties) becomes positive
    pivot = np.argmax(np.abs(U_r), axis=0)
    U_r = U_r * np.sign(U_r[pivot, np.arange(r)])
    root_S = np.sqrt(S_r)
    # Σ_r^{-½}, with 0 for an empty component (σ_i = 0): its B column is 0 as well
    inverse_root_S = np.divide(1, root_S, out=np.zeros_like(root_S), where=root_S > 0)
    B = U_r * root_S
    A = (inverse_root_S[:, None] * U_r.T) @ delta
    W_eff = W_c + B @ A
    return (A, B, W_eff), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    eora_compensation,
    name="eora-zero-eigenvalue-nan",
    source="NVlabs/EoRA, EoRA/eora.py, llama_sequential_eigen",
    official="guards only negative eigenvalues of C (replaced by the smallest positive one): an exactly zero "
    "eigenvalue (an input direction no calibration row reaches) gives 1/√0 = inf in Q'⁻¹ = Λ^{-½}Qᵀ, and "
    "A = √Σ_r V_rᵀ Q'⁻¹ and W_c + B A come out NaN (a near-zero one gives huge, inaccurate entries)",
    paper="A = Σ_r^{-½} U_rᵀ ΔW, the same factor wherever C is invertible and its ε → 0 limit on C + εI "
    "otherwise: finite, and the output error on the calibration data is still the minimum",
    example=Example(
        args=(np.array([[2.0, 2.0]]), np.array([[1.0, 1.0]]), np.diag([0.0, 1.0]), 1),
        official={"A": [[np.nan, np.nan]], "W_eff": [[np.nan, np.nan]]},
        reference={"A": [[1.0, 1.0]], "B": [[1.0]], "W_eff": [[2.0, 2.0]]},
        note="ΔW = [[1, 1]], C = diag(0, 1): the first input is never excited",
    ),
)
known_deviation(
    eora_compensation,
    name="eora-negative-eigenvalue-smallest-positive",
    source="NVlabs/EoRA, EoRA/eora.py, llama_sequential_eigen (L[L < 0] = torch.min(L[L > 0]))",
    official="replaces a negative eigenvalue of C (the rounding error of a zero one: an input direction no "
    "calibration row reaches) by the smallest positive eigenvalue, giving that unseen direction the weight "
    "of the weakest seen one",
    paper="C = XᵀX = QΛQᵀ is positive semidefinite: its negative computed eigenvalues are zeros, and "
    "refimpl sets them to 0 (the nearest positive semidefinite C)",
    flag={"negative_eigenvalues": "smallest_positive"},
    example=Example(
        args=(np.array([[3.0, 0.0], [0.0, 1.0]]), np.zeros((2, 2)), np.diag([-1e-16, 1.0]), 1),
        official={"W_eff": [[3.0, 0.0], [0.0, 0.0]]},
        reference={"W_eff": [[0.0, 0.0], [0.0, 1.0]]},
        note="ΔW = diag(3, 1); the first input is never excited (its eigenvalue computed as −1e-16)",
    ),
)
