"""Smooth acyclicity functions, the least-squares SEM score, NOTEARS and TOPO's swap candidates
(Optimizing NOTEARS Objectives via Topological Swaps, Deng et al.)."""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
from scipy.optimize import minimize

try:  # L-BFGS-B calls BLAS on vectors of 2d² entries: waking a thread pool costs more than the work
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional: only the speed of the solver depends on it
    threadpool_limits = None

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    Paper,
    RealScalar,
    array_namespace,
    known_deviation,
    op,
)

__all__ = [
    "PAPER",
    "dagma_acyclicity_logdet",
    "least_squares_sem_score",
    "notears_acyclicity_exp",
    "notears_augmented_lagrangian",
    "poly_acyclicity",
    "topo_acyclicity_logdet_abs",
    "topo_swap_candidates",
]

PAPER = Paper(
    "Optimizing NOTEARS Objectives via Topological Swaps",
    arxiv="2305.17277",
    year=2023,
    code="Duntrain/TOPO",
)

#: Taylor terms of exp(B) once ‖B‖_∞ ≤ 1/2: the first term left out is below 0.5¹⁹/19! ≈ 1.6e-23.
TAYLOR_TERMS = 18


# -- shared blocks: nonnegative matrix functions without cancellation ----------------------------
def exp_minus_identity(A):
    """``exp(A) − I`` for a nonnegative square matrix ``A``, by scaling and squaring.

    ``B = A/2^k`` with ``‖B‖_∞ ≤ 1/2`` (division by a power of two: exact); the Taylor series
    ``F = Σ_{m≥1} B^m/m!`` (18 terms); then ``k`` squarings of ``I + F`` kept without the
    identity, ``(I + F)² − I = 2F + F·F``. Every step adds nonnegative numbers, so nothing
    cancels: ``tr F`` keeps its relative accuracy when it is tiny, and an entry is exactly 0
    where no walk joins its two nodes (on a DAG the diagonal of every power is exactly 0).
    Works on NumPy and CuPy arrays alike.
    """
    xp = array_namespace(A)
    norm = float(xp.max(xp.sum(A, axis=1))) if A.shape[0] else 0.0  # ‖A‖_∞ (A ≥ 0)
    if not math.isfinite(norm):
        return xp.full_like(A, xp.inf)  # W ∘ W overflowed: h = inf, refused by the op layer
    squarings = 0 if norm <= 0.5 else math.ceil(math.log2(norm / 0.5))
    B = A / A.dtype.type(2.0**squarings)
    term = B
    F = B
    for m in range(2, TAYLOR_TERMS + 1):
        term = (term @ B) / A.dtype.type(m)
        F = F + term
    for _ in range(squarings):
        F = 2 * F + F @ F  # (I + F)² − I, overflows to inf for a large |W| (refused)
    return F


def _compose(F, G):
    """``(I + F)(I + G) − I = F + G + F G`` (nonnegative: no cancellation)."""
    return F + G + F @ G


def power_minus_identity(B, k: int):
    """``(I + B)^k − I`` for ``B ≥ 0`` by binary powering of ``I + B`` kept without the identity."""
    xp = array_namespace(B)
    result = xp.zeros_like(B)
    base = B
    while k:
        if k & 1:
            result = _compose(result, base)
        k >>= 1
        if k:
            base = _compose(base, base)
    return result


def m_matrix_factor(B):
    """LU of ``I − B`` without pivoting, for ``B ≥ 0``: the exact M-matrix test and a
    cancellation-free log-determinant.

    ``I − B`` is a Z-matrix (off-diagonal ≤ 0); it is a nonsingular M-matrix, i.e.
    ``ρ(B) < 1``, if and only if every leading principal minor is positive, i.e. every pivot
    of Gaussian elimination without pivoting is positive (Berman & Plemmons, *Nonnegative
    Matrices in the Mathematical Sciences*, Thm. 6.2.3, condition (E17)). Each Schur
    complement stays of the form ``I − N`` with ``N ≥ 0``: eliminating column ``k`` with
    pivot ``p_k = 1 − N_kk`` updates ``N_ij += (N_ik/p_k)·N_kj``, a sum of nonnegative
    numbers. So ``q_k = N_kk = 1 − p_k`` is computed without cancellation and
    ``log det(I − B) = Σ_k log1p(−q_k)`` keeps its digits when it is tiny; on a DAG every
    product vanishes exactly and ``q = 0``.

    Returns ``(N, q, failed)``: ``N`` holds the multipliers ``ℓ_ik = N_ik/p_k ≥ 0`` below the
    diagonal (``L = I − ℓ``) and ``u_kj = N_kj ≥ 0`` above it (``U = diag(p) − u``), ``q``
    the pivots' complements, and ``failed`` the first step whose pivot is not positive
    (None inside the domain; then ``N`` and ``q`` stop there).
    """
    xp = array_namespace(B)
    d = B.shape[0]
    N = B.copy()
    for k in range(d):
        q_k = N[k, k]  # final: later steps update the trailing block only
        if not bool(q_k < 1):  # pivot 1 − q_k ≤ 0: a leading principal minor is not positive
            return N, xp.diagonal(N).copy(), k
        pivot = 1 - q_k
        N[k + 1 :, k] = N[k + 1 :, k] / pivot  # ℓ_ik
        N[k + 1 :, k + 1 :] = N[k + 1 :, k + 1 :] + xp.outer(N[k + 1 :, k], N[k, k + 1 :])
    return N, xp.diagonal(N).copy(), None


def m_matrix_inverse(N, q):
    """``(I − B)^{-1} = U^{-1} L^{-1}`` from :func:`m_matrix_factor`, entrywise ≥ 0.

    ``L = I − ℓ`` (unit lower) and ``U = diag(1 − q) − u`` (upper) have nonnegative inverses:
    ``L^{-1}[k] = e_k + Σ_{j<k} ℓ_kj L^{-1}[j]`` and
    ``U^{-1}[k] = (e_k + Σ_{j>k} u_kj U^{-1}[j])/(1 − q_k)``, sums of nonnegative numbers.
    An entry is exactly 0 where there is no directed path (``(I − B)^{-1} = Σ_m B^m``).
    """
    xp = array_namespace(N)
    d = N.shape[0]
    identity = xp.eye(d, dtype=N.dtype)
    lower_inverse = xp.zeros_like(N)
    for k in range(d):
        lower_inverse[k] = identity[k] + N[k, :k] @ lower_inverse[:k]
    upper_inverse = xp.zeros_like(N)
    for k in range(d - 1, -1, -1):
        upper_inverse[k] = (identity[k] + N[k, k + 1 :] @ upper_inverse[k + 1 :]) / (1 - q[k])
    return upper_inverse @ lower_inverse


def _domain_error(argument, weights, s, failed, what):
    return ArgumentError(
        argument,
        f"a weighted adjacency inside the M-matrix domain ρ({what}) < s = {s:g} "
        f"(sI − {what} a nonsingular M-matrix: every leading principal minor positive)",
        f"leading principal minor {failed + 1} of sI − {what} is not positive, so ρ({what}) ≥ s",
    )


def _check_logdet(arguments) -> None:
    W, s = arguments["W"], arguments["s"]
    _, _, failed = m_matrix_factor((W * W) / W.dtype.type(s))
    if failed is not None:
        raise _domain_error("W", W, s, failed, "W∘W")


def _check_logdet_abs(arguments) -> None:
    if not arguments["check_domain"]:
        return
    W, s = arguments["W"], arguments["s"]
    xp = array_namespace(W)
    _, _, failed = m_matrix_factor(xp.abs(W) / W.dtype.type(s))
    if failed is not None:
        raise _domain_error("W", W, s, failed, "|W|")


# -- acyclicity functions --------------------------------------------------------------------------
@op(inputs={"W": FloatArray("d", "d")}, outputs=("h",), differentiable=("W",))
def notears_acyclicity_exp(W):
    r"""NOTEARS acyclicity: ``h(W) = tr(exp(W ∘ W)) − d``, zero exactly on DAGs.

    ``(W ∘ W)^k_ii`` sums the weights of the closed walks of length k through node i, so the
    trace of the exponential, ``d + Σ_k tr((W∘W)^k)/k!``, exceeds d exactly when the graph of
    W has a cycle (self-loops included). h is smooth, and its gradient is what a continuous
    optimizer follows to make the graph acyclic.

    Forward. ``A = W ∘ W ≥ 0``; ``F = exp(A) − I`` by scaling and squaring of a Taylor series
    (18 terms on ``A/2^k``, ``‖A/2^k‖_∞ ≤ 1/2``), keeping ``exp − I`` through the squarings
    (``(I + F)² − I = 2F + F·F``): every operation adds nonnegative numbers, so ``h = tr F``
    has full relative accuracy even when tiny, and is exactly 0 on a DAG (``tr(E) − d``,
    the official formula, cancels to ``d`` ulps). ``exp`` grows like ``e^{ρ(A)}``: a
    large |W| overflows and the op layer refuses the infinite h.

    Backward. For a matrix function given by a power series, ``d tr f(A) = tr(f'(A) dA)``
    (each term: ``d tr(A^k) = k tr(A^{k−1} dA)`` by the cyclic trace); with ``f = f' = exp``,
    ``dh = tr(exp(A) dA) = Σ_ij exp(A)_ji dA_ij``, so ``∂h/∂A = exp(A)ᵀ``. With ``dA = 2W ∘ dW``::

        ∂h/∂W = exp(W ∘ W)ᵀ ∘ 2W = (I + F)ᵀ ∘ 2W,      W̄ = ḡ · (I + F)ᵀ ∘ 2W

    (the transpose is easy to forget: the gradient at ``W_ij`` counts the walks ``j ⇝ i``).

    Args:
        W: weighted adjacency (d, d), ``W_ij ≠ 0`` meaning an edge i → j; float64 advised.

    Returns:
        h: a scalar ≥ 0, zero iff the graph of W is a DAG.

    Reference: Zheng, Aragam, Ravikumar, Xing, *DAGs with NO TEARS: Continuous Optimization
    for Structure Learning*, NeurIPS 2018 (arXiv:1803.01422), Theorem 1; official code
    xunzheng/notears, ``notears/linear.py`` (``_h``). Collected in Deng et al.,
    *Optimizing NOTEARS Objectives via Topological Swaps*, arXiv:2305.17277.

    >>> import numpy as np, refimpl
    >>> W = np.array([[0.0, 1.0], [0.5, 0.0]])  # a 2-cycle with |ab| = 0.5
    >>> round(float(refimpl.structure_learning.notears_acyclicity_exp(W)), 10)  # 2 cosh(0.5) − 2
    0.2552519304
    """
    A = W * W
    F = exp_minus_identity(A)
    h = np.trace(F)
    return np.asarray(h, dtype=W.dtype), (W, F)


@notears_acyclicity_exp.defvjp
def notears_acyclicity_exp_backward(residuals, g_h):
    W, F = residuals
    exp_transposed = F.T + np.eye(W.shape[0], dtype=W.dtype)
    g_W = W.dtype.type(g_h) * (2 * W) * exp_transposed
    return (g_W.astype(W.dtype, copy=False),)


@op(
    inputs={"W": FloatArray("d", "d"), "s": RealScalar(0, low_open=True)},
    outputs=("h",),
    differentiable=("W",),
    check=_check_logdet,
)
def dagma_acyclicity_logdet(W, *, s=1.0):
    r"""DAGMA's log-determinant acyclicity: ``h_s(W) = −log det(sI − W ∘ W) + d log s``.

    On the M-matrix domain ``ρ(W ∘ W) < s``, ``(sI − A)^{-1} = Σ_k A^k/s^{k+1}`` and
    ``−log det(I − A/s) = Σ_k tr(A^k)/(k s^k)``: like ``tr exp``, a weighted count of closed
    walks, zero exactly on DAGs and positive otherwise, but with gradients that do not blow
    up like the exponential's. Outside the domain the determinant may be negative or the
    log-det a different branch: the input is refused (``InputError``), never answered with a
    silently dropped sign.

    Forward. ``B = W∘W/s``; Gaussian elimination of ``I − B`` without pivoting, which for
    this Z-matrix is the exact M-matrix test (every pivot positive ⇔ every leading principal
    minor positive ⇔ ``ρ(B) < 1``). Each Schur complement stays ``I − N`` with ``N ≥ 0``
    (``N_ij += N_ik N_kj/p_k``), so the pivots' complements ``q_k = 1 − p_k`` are sums of
    nonnegative numbers and::

        h = −log det(I − B) = −Σ_k log1p(−q_k)          (= −log det(sI − A) + d log s)

    has full relative accuracy, 0 exactly on a DAG.

    Backward. ``M = sI − A``: ``d(−log det M) = −tr(M^{-1} dM)`` and ``dM = −dA = −2W ∘ dW``,
    so ``dh = Σ_ij (M^{-1})_ji 2W_ij dW_ij``::

        ∂h/∂W = 2W ∘ (sI − W∘W)^{−T},      W̄ = ḡ · 2W ∘ M^{−T}

    with ``M^{-1} = (I − B)^{-1}/s = U^{-1}L^{-1}/s`` from the same factors (entrywise ≥ 0,
    triangular inverses by substitution with nonnegative sums).

    Args:
        W: weighted adjacency (d, d), W_ij ≠ 0 meaning i → j; float64 advised.
        s: the domain's scale s > 0 (default 1, DAGMA's first stage).

    Returns:
        h: a scalar ≥ 0, zero iff the graph of W is a DAG.

    Raises:
        InputError: W outside the M-matrix domain ``ρ(W∘W) < s``.

    Reference: Bello, Aragam, Ravikumar, *DAGMA: Learning DAGs via M-matrices and a
    Log-Determinant Acyclicity Characterization*, NeurIPS 2022 (arXiv:2209.08037), eq. (4);
    as used by Deng et al., arXiv:2305.17277, and CoLiDE (SAMiatto/colide ``model.py``,
    ``_h``). The pivot test: Berman & Plemmons, *Nonnegative Matrices in the Mathematical
    Sciences*, Thm. 6.2.3 (E17).

    >>> import numpy as np, refimpl
    >>> W = np.array([[0.0, 1.0], [0.5, 0.0]])  # a²b² = 0.25
    >>> round(float(refimpl.structure_learning.dagma_acyclicity_logdet(W)), 10)  # −log(0.75)
    0.2876820725
    """
    dtype = W.dtype.type
    B = (W * W) / dtype(s)
    N, q, _ = m_matrix_factor(B)
    h = -np.sum(np.log1p(-q))
    return np.asarray(h, dtype=W.dtype), (W, N, q, dtype(s))


@dagma_acyclicity_logdet.defvjp
def dagma_acyclicity_logdet_backward(residuals, g_h):
    W, N, q, s = residuals
    M_inverse = m_matrix_inverse(N, q) / s  # (sI − W∘W)^{-1} = (I − B)^{-1}/s
    g_W = W.dtype.type(g_h) * (2 * W) * M_inverse.T
    return (g_W.astype(W.dtype, copy=False),)


@op(
    inputs={"W": FloatArray("d", "d"), "s": RealScalar(0, low_open=True), "check_domain": Flag()},
    outputs=("h",),
    differentiable=("W",),
    check=_check_logdet_abs,
)
def topo_acyclicity_logdet_abs(W, *, s=1.0, check_domain=True):
    r"""TOPO's log-determinant acyclicity on |W|: ``h = −log det(sI − |W|) + d log s``.

    The DAGMA characterization applied to ``|W|`` instead of ``W ∘ W`` (TOPO's default,
    ``h_type='log_det'`` with s = 1): on the domain ``ρ(|W|) < s``,
    ``(sI − |W|)^{-1} = Σ_k |W|^k/s^{k+1}``, so h is a weighted count of closed walks, zero
    exactly on DAGs. TOPO uses ``G_h = (sI − |W|)^{−T}``, the derivative with respect to
    ``|W|``, to rank the swaps of a topological order (:func:`topo_swap_candidates`):
    ``G_h[i, j] = 0`` iff there is no path ``j ⇝ i``.

    Forward (``check_domain=True``, default): as :func:`dagma_acyclicity_logdet` with
    ``B = |W|/s``: elimination without pivoting of ``I − B`` (the exact M-matrix test,
    refused outside), ``h = −Σ_k log1p(−q_k)`` without cancellation, 0 exactly on a DAG.
    ``check_domain=False`` mirrors TOPO's code: ``h = −log|det(sI − |W|)| + d log s`` from
    LAPACK's pivoted LU (``slogdet``), the sign of the determinant ignored, and
    ``G_h = inv(sI − |W|)ᵀ`` (a singular matrix gives h = inf: refused).

    Backward. ``d(−log|det M|) = −tr(M^{-1} dM)`` whatever the sign, ``dM = −d|W|``, so
    ``∂h/∂|W| = M^{−T} = G_h``; with ``d|W_ij| = sign(W_ij) dW_ij`` (0 at W_ij = 0, where
    the two one-sided slopes ``±G_h`` average to 0)::

        ∂h/∂W = sign(W) ∘ G_h,      W̄ = ḡ · sign(W) ∘ (sI − |W|)^{−T}

    Args:
        W: weighted adjacency (d, d), W_ij ≠ 0 meaning i → j; float64 advised.
        s: the domain's scale s > 0 (default 1, TOPO's value).
        check_domain: refuse W outside ``ρ(|W|) < s`` (default True); False reproduces
            TOPO's ``slogdet`` that ignores the sign of the determinant.

    Returns:
        h: a scalar, ≥ 0 and zero iff the graph is a DAG inside the domain.

    Raises:
        InputError: with ``check_domain=True``, W outside the domain.

    Reference: Deng, Bello, Aragam, Ravikumar, *Optimizing NOTEARS Objectives via
    Topological Swaps*, ICML 2023, arXiv:2305.17277; official code Duntrain/TOPO,
    ``Topo_utils.py`` (``h_func``, ``h_type='log_det'``).

    >>> import numpy as np, refimpl
    >>> W = np.array([[0.0, -1.0], [0.5, 0.0]])  # |ab| = 0.5
    >>> round(float(refimpl.structure_learning.topo_acyclicity_logdet_abs(W)), 10)  # −log(1 − 0.5)
    0.6931471806
    """
    dtype = W.dtype.type
    A = np.abs(W)
    if check_domain:
        N, q, _ = m_matrix_factor(A / dtype(s))
        h = -np.sum(np.log1p(-q))
        return np.asarray(h, dtype=W.dtype), (W, (N, q), dtype(s))
    d = W.shape[0]
    M = dtype(s) * np.eye(d, dtype=W.dtype) - A
    _, log_abs_det = np.linalg.slogdet(M)
    h = -log_abs_det + d * np.log(dtype(s))
    G_h = np.linalg.inv(M).T if np.isfinite(log_abs_det) else None  # singular: h = inf, refused
    return np.asarray(h, dtype=W.dtype), (W, G_h, dtype(s))


@topo_acyclicity_logdet_abs.defvjp
def topo_acyclicity_logdet_abs_backward(residuals, g_h):
    W, factors, s = residuals
    if isinstance(factors, tuple):
        G_h = m_matrix_inverse(*factors).T / s  # (sI − |W|)^{−T}
    else:
        G_h = factors
    g_W = W.dtype.type(g_h) * np.sign(W) * G_h
    return (g_W.astype(W.dtype, copy=False),)


@op(inputs={"W": FloatArray("d", "d")}, outputs=("h",), differentiable=("W",))
def poly_acyclicity(W):
    r"""Polynomial acyclicity (DAG-GNN): ``h(W) = tr((I + W ∘ W/d)^d) − d``.

    ``(I + A/d)^d = Σ_{k≤d} C(d, k) A^k/d^k``: the walks of length at most d (every cycle of
    a d-node graph has one), with binomial weights. Zero exactly on DAGs, positive
    otherwise, and only d matrix products deep (no exponential to overflow early).

    Forward. ``B = W∘W/d ≥ 0``; ``(I + B)^k − I`` by binary powering, composing without the
    identity: ``(I + F)(I + G) − I = F + G + FG`` (nonnegative sums, no cancellation). With
    ``F_{d−1} = (I + B)^{d−1} − I`` and ``F_d = F_{d−1} + B + F_{d−1}B``::

        h = tr F_d       (exactly 0 on a DAG; tr(P^d) − d would cancel to d ulps)

    Backward. ``P = I + B``: ``d tr(P^d) = d·tr(P^{d−1} dP)`` (cyclic trace), and
    ``dP = 2W ∘ dW/d``, so ``dh = Σ_ij (P^{d−1})_ji 2W_ij dW_ij``::

        ∂h/∂W = 2W ∘ ((I + W∘W/d)^{d−1})ᵀ = 2W ∘ (I + F_{d−1})ᵀ,   W̄ = ḡ · ∂h/∂W

    Args:
        W: weighted adjacency (d, d), W_ij ≠ 0 meaning i → j.

    Returns:
        h: a scalar ≥ 0, zero iff the graph of W is a DAG.

    Reference: Yu, Chen, Gao, Yu, *DAG-GNN: DAG Structure Learning with Graph Neural
    Networks*, ICML 2019 (arXiv:1904.10098), Theorem 1; the commented alternative in
    xunzheng/notears ``notears/linear.py`` (``_h``) and Duntrain/TOPO ``Topo_utils.py``
    (``h_type='poly'``, on |W|); collected in Deng et al., arXiv:2305.17277.

    >>> import numpy as np, refimpl
    >>> W = np.array([[0.0, 1.0], [0.5, 0.0]])  # (I + B)² with B = [[0, .5], [.125, 0]]
    >>> float(refimpl.structure_learning.poly_acyclicity(W))  # tr = 2 + 2·(0.5·0.125)
    0.125
    """
    d = W.shape[0]
    B = (W * W) / W.dtype.type(d)
    F_before = power_minus_identity(B, d - 1)  # (I + B)^{d−1} − I
    F = _compose(F_before, B)  # (I + B)^d − I
    return np.asarray(np.trace(F), dtype=W.dtype), (W, F_before)


@poly_acyclicity.defvjp
def poly_acyclicity_backward(residuals, g_h):
    W, F_before = residuals
    power_transposed = F_before.T + np.eye(W.shape[0], dtype=W.dtype)
    g_W = W.dtype.type(g_h) * (2 * W) * power_transposed
    return (g_W.astype(W.dtype, copy=False),)


# -- the score ---------------------------------------------------------------------------------------
@op(inputs={"X": FloatArray("n", "d"), "W": FloatArray("d", "d")}, outputs=("loss",), differentiable=("W",))
def least_squares_sem_score(X, W):
    r"""The least-squares score of a linear SEM: ``L(W) = ‖X − XW‖_F²/(2n)``.

    In a linear structural equation model each variable is a linear function of its
    parents plus noise, ``x_j = Σ_i W_ij x_i + z_j``; the residuals ``X − XW`` are the noise
    estimates and L their mean square (halved). NOTEARS and TOPO minimize it subject to
    acyclicity. X is centred by the caller.

    Forward: ``R = X − XW`` (n, d), ``L = Σ R²/(2n)``.

    Backward. ``dL = ⟨R, dR⟩/n`` and ``dR = −X dW``, so ``dL = −⟨XᵀR, dW⟩/n``::

        ∂L/∂W = −Xᵀ(X − XW)/n,      W̄ = ḡ · ∂L/∂W

    Args:
        X: data (n, d), centred.
        W: weighted adjacency (d, d).

    Returns:
        loss: a scalar ≥ 0.

    Reference: Deng et al., *Optimizing NOTEARS Objectives via Topological Swaps*,
    arXiv:2305.17277 (official code Duntrain/TOPO ``Topo_utils.py``, ``obj_loss``); Zheng et
    al., arXiv:1803.01422 (xunzheng/notears ``notears/linear.py``, ``_loss``, ``'l2'``).

    >>> import numpy as np, refimpl
    >>> X = np.array([[1.0, 2.0], [-1.0, -2.0]])
    >>> float(refimpl.structure_learning.least_squares_sem_score(X, np.array([[0.0, 2.0], [0.0, 0.0]])))
    0.5
    """
    n = X.shape[0]
    R = X - X @ W
    loss = np.sum(R * R) / X.dtype.type(2 * n)
    return np.asarray(loss, dtype=X.dtype), (X, R)


@least_squares_sem_score.defvjp
def least_squares_sem_score_backward(residuals, g_loss):
    X, R = residuals
    g_W = -(X.dtype.type(g_loss) / X.dtype.type(X.shape[0])) * (X.T @ R)
    return (g_W.astype(X.dtype, copy=False),)


# -- NOTEARS: the augmented Lagrangian solver --------------------------------------------------------
def _check_notears(arguments) -> None:
    X = arguments["X"]
    if X.shape[1] < 2:
        raise ArgumentError(
            "X", "d >= 2 variables (a graph on one node has no edge)", f"shape {tuple(X.shape)}"
        )


@op(
    inputs={
        "X": FloatArray("n", "d"),
        "lambda1": RealScalar(0),
        "max_iter": IntScalar(1),
        "h_tol": RealScalar(0),
        "rho_max": RealScalar(0, low_open=True),
        "w_threshold": RealScalar(0),
        "inner_max_iter": IntScalar(1),
        "inner_ftol": RealScalar(0),
        "inner_gtol": RealScalar(0),
    },
    outputs=("W", "W_unthresholded", "h", "rho", "alpha"),
    check=_check_notears,
)
def notears_augmented_lagrangian(
    X,
    *,
    lambda1,
    max_iter=100,
    h_tol=1e-8,
    rho_max=1e16,
    w_threshold=0.3,
    inner_max_iter=15000,
    inner_ftol=2.220446049250313e-09,
    inner_gtol=1e-05,
):
    r"""NOTEARS (linear, least squares): ``min L(W) + λ₁‖W‖₁ s.t. h(W) = 0`` by augmented Lagrangian.

    The combinatorial constraint "W is a DAG" becomes the smooth equality
    ``h(W) = tr(exp(W∘W)) − d = 0`` (:func:`notears_acyclicity_exp`), handled by the augmented
    Lagrangian method: minimize ``L(W) + (ρ/2)h² + αh + λ₁‖W‖₁`` over W for fixed (ρ, α),
    raise ρ until h drops enough, take the dual step ``α ← α + ρh``, repeat until
    h ≤ h_tol. Small weights are cut at the end.

    Inner problem. The ℓ1 term is made smooth by splitting ``W = W⁺ − W⁻`` with
    ``W⁺, W⁻ ≥ 0`` (``‖W‖₁ = Σ(W⁺ + W⁻)`` there), diagonal entries fixed at 0, and solved by
    SciPy's L-BFGS-B with bounds. The objective and its gradient::

        F = L(W) + (ρ/2) h² + α h + λ₁ Σ(W⁺ + W⁻)
        G = ∇L + (ρ h + α) ∇h,   ∂F/∂W⁺ = G + λ₁,   ∂F/∂W⁻ = −G + λ₁

    with ``L = ‖X − XW‖²/(2n)``, ``∇L = −Xᵀ(X − XW)/n`` and ``∇h = exp(W∘W)ᵀ ∘ 2W``.

    Outer loop (the official code's, step by step)::

        W⁺ = W⁻ = 0, ρ = 1, α = 0, h = inf
        repeat max_iter times:
            while ρ < ρ_max:
                solve the inner problem from the current (W⁺, W⁻);  h_new = h(W_new)
                if h_new > h/4: ρ ← 10ρ   else: stop
            (W, h) ← (W_new, h_new);  α ← α + ρh
            stop if h ≤ h_tol or ρ ≥ ρ_max
        W_ij ← 0 where |W_ij| < w_threshold

    Everything is computed in float64 whatever the dtype (an optimizer's path is not
    rounding-stable in float32), then rounded to the dtype of X. X is centred by the caller
    (the official code centres it itself for the least-squares loss). h is evaluated
    with the cancellation-free ``exp − I`` of :func:`notears_acyclicity_exp` (the official
    ``tr(expm(W∘W)) − d`` agrees to ~d ulps). Not differentiable (a solver).

    Not pinned by the paper: λ₁ (0.1 in the official example), a required argument.

    Args:
        X: centred data (n, d), d ≥ 2.
        lambda1: ℓ1 weight λ₁ ≥ 0 (required; the official example uses 0.1).
        max_iter: the most dual ascent steps (default 100, official).
        h_tol: stop once h ≤ h_tol (default 1e-8, official).
        rho_max: stop once ρ ≥ ρ_max (default 1e16, official).
        w_threshold: final cut, ``|W_ij| < w_threshold → 0`` (default 0.3, official).
        inner_max_iter, inner_ftol, inner_gtol: L-BFGS-B's ``maxiter``, ``ftol``, ``gtol``
            (defaults: SciPy's, which the official code leaves in place).

    Returns:
        W: the estimate after the threshold (d, d).
        W_unthresholded: the estimate before it.
        h: h(W) after each dual step (the convergence record, one per outer iteration).
        rho: ρ used for each dual step.
        alpha: α after each dual step.

    Reference: Zheng, Aragam, Ravikumar, Xing, *DAGs with NO TEARS*, NeurIPS 2018
    (arXiv:1803.01422), Algorithm 1; official code xunzheng/notears, ``notears/linear.py``
    (``notears_linear``, ``loss_type='l2'``). Collected in Deng et al., arXiv:2305.17277.

    >>> import numpy as np, refimpl
    >>> rng = np.random.default_rng(0)
    >>> x0 = rng.standard_normal(200)
    >>> X = np.stack([x0, 2.0 * x0 + 0.5 * rng.standard_normal(200)], axis=1)
    >>> X = X - X.mean(axis=0)
    >>> W, _, h, rho, alpha = refimpl.structure_learning.notears_augmented_lagrangian(X, lambda1=0.01)
    >>> (W != 0).astype(int)  # the edge 0 → 1 and nothing else
    array([[0, 1],
           [0, 0]])
    >>> bool(h[-1] <= 1e-8)
    True
    """
    dtype = X.dtype
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape

    def adjacency(w):
        return (w[: d * d] - w[d * d :]).reshape(d, d)

    def acyclicity(W):
        F = exp_minus_identity(W * W)
        return float(np.trace(F)), (F.T + np.eye(d)) * (2 * W)

    def objective(w):
        W = adjacency(w)
        R = X - X @ W
        loss = 0.5 / n * float(np.sum(R * R))
        g_loss = -1.0 / n * (X.T @ R)
        h, g_h = acyclicity(W)
        value = loss + 0.5 * rho * h * h + alpha * h + lambda1 * float(w.sum())
        g_smooth = g_loss + (rho * h + alpha) * g_h
        gradient = np.concatenate(((g_smooth + lambda1).ravel(), (-g_smooth + lambda1).ravel()))
        return value, gradient

    w_est, rho, alpha, h = np.zeros(2 * d * d), 1.0, 0.0, np.inf
    bounds = [(0, 0) if i == j else (0, None) for _ in range(2) for i in range(d) for j in range(d)]
    options = {"maxiter": int(inner_max_iter), "ftol": float(inner_ftol), "gtol": float(inner_gtol)}
    record_h, record_rho, record_alpha = [], [], []
    with threadpool_limits(1) if threadpool_limits is not None else nullcontext():
        for _ in range(max_iter):
            w_new, h_new = None, None
            while rho < rho_max:
                solution = minimize(
                    objective, w_est, method="L-BFGS-B", jac=True, bounds=bounds, options=options
                )
                w_new = solution.x
                h_new, _ = acyclicity(adjacency(w_new))
                if h_new > 0.25 * h:
                    rho *= 10
                else:
                    break
            if w_new is None:  # ρ ≥ ρ_max before any solve (rho_max ≤ 1): nothing to do
                break
            w_est, h = w_new, h_new
            alpha += rho * h
            record_h.append(h)
            record_rho.append(rho)
            record_alpha.append(alpha)
            if h <= h_tol or rho >= rho_max:
                break
    W_unthresholded = adjacency(w_est)
    W = np.where(np.abs(W_unthresholded) < w_threshold, 0.0, W_unthresholded)
    outputs = (
        W.astype(dtype),
        W_unthresholded.astype(dtype),
        np.array(record_h, dtype=dtype),
        np.array(record_rho, dtype=dtype),
        np.array(record_alpha, dtype=dtype),
    )
    return outputs, None


# -- TOPO: candidate swaps ----------------------------------------------------------------------------
def candidate_sizes(d: int) -> tuple[int, int]:
    """TOPO's search-space sizes for d nodes (the paper's formulas):
    ``size_small = min(⌊1.5d⌋, ⌊√d (d−1) log₁₀ d⌋, ⌊d(d−1)/2⌋)`` and
    ``size_large = max(⌊1.5d⌋, min(⌊√d (d−1) log₁₀ d⌋, ⌊d(d−1)/2⌋))``."""
    linear = math.floor(1.5 * d)
    superlinear = math.floor(math.sqrt(d) * (d - 1) * math.log10(d)) if d >= 1 else 0
    pairs = d * (d - 1) // 2
    return min(linear, superlinear, pairs), max(linear, min(superlinear, pairs))


def _check_order(arguments) -> None:
    order = arguments["order"]
    d = order.shape[0]
    if not np.array_equal(np.sort(np.asarray(order)), np.arange(d)):
        raise ArgumentError(
            "order",
            f"a permutation of the nodes 0..{d - 1} (each node once)",
            f"{np.asarray(order).tolist()}",
        )
    W, s = arguments["W"], arguments["s"]
    xp = array_namespace(W)
    _, _, failed = m_matrix_factor(xp.abs(W) / W.dtype.type(s))
    if failed is not None:
        raise _domain_error("W", W, s, failed, "|W|")


@op(
    inputs={
        "W": FloatArray("d", "d"),
        "order": IntArray("d", low=0, high="d"),
        "s": RealScalar(0, low_open=True),
        "size_small": IntScalar(0, optional=True),
        "size_large": IntScalar(0, optional=True),
        "official_ties": Flag(),
    },
    outputs=("pairs_small", "pairs_large"),
    check=_check_order,
)
def topo_swap_candidates(W, order, *, s=1.0, size_small=None, size_large=None, official_ties=False):
    r"""TOPO's candidate swaps: the forbidden edges whose addition creates the fewest cycles.

    A topological order π allows the edges i → j with i before j; ``Z_ij`` marks the others
    as forbidden (i ≠ j, i not before j). TOPO's outer loop swaps two nodes of π to allow a
    forbidden edge, and ranks the candidates by ``G_h = (sI − |W|)^{−T}``, the gradient of
    the log-det acyclicity with respect to |W|: since ``(sI − |W|)^{-1} = Σ_k |W|^k/s^{k+1}``,
    ``G_h[i, j] = Σ_k (|W|^k)_{ji}/s^{k+1} ≥ 0`` is zero iff there is no directed path
    ``j ⇝ i``, i.e. iff adding ``i → j`` creates no cycle, and small when the cycles it would
    create are weak. The candidates are the forbidden pairs with the smallest ``G_h``.

    Forward. ``G_h`` from the elimination of ``I − |W|/s`` without pivoting (the M-matrix
    test; W outside ``ρ(|W|) < s`` is refused) and nonnegative triangular inverses, so an
    entry is exactly 0 where there is no path (a pivoted LAPACK inverse leaves rounding
    noise there, which reorders the zeros), in float64 whatever the dtype (a ranking must
    not flip with a rounding). Then, over the forbidden pairs in row-major
    order, a stable sort by ``G_h``: the first ``size`` (ties broken by the lowest flat index
    ``i·d + j``), for each of the two sizes. A size larger than the d(d−1)/2 forbidden pairs
    returns them all. ``official_ties=True`` reproduces TOPO's ``find_idx_set_updated``:
    every forbidden pair with ``G_h ≤`` the size-th smallest value, in row-major order (ties
    give more than ``size`` pairs). Sizes default to the paper's
    (:func:`candidate_sizes`; 0 for d = 2 and 1 for d = 3, so small graphs may get none).
    Not differentiable (a selection).

    Args:
        W: weighted adjacency (d, d), typically the order-constrained fit ``W_π``.
        order: the topological order π (d,), a permutation of 0..d−1, sources first.
        s: the log-det scale (default 1, TOPO's).
        size_small, size_large: the two search-space sizes (default None: the paper's
            formulas ``min(⌊1.5d⌋, ⌊√d (d−1) log₁₀ d⌋, ⌊d(d−1)/2⌋)`` and
            ``max(⌊1.5d⌋, min(⌊√d (d−1) log₁₀ d⌋, ⌊d(d−1)/2⌋))``).
        official_ties: keep every pair tied with the last one, in row-major order, as the
            official code does (default False).

    Returns:
        pairs_small: (k, 2) int64 pairs ``(i, j)``, the edge i → j, by increasing ``G_h``.
        pairs_large: the same for the large size.

    Reference: Deng, Bello, Aragam, Ravikumar, *Optimizing NOTEARS Objectives via
    Topological Swaps*, ICML 2023, arXiv:2305.17277 (Algorithm 2 and the search-space
    sizes of the experiments); official code Duntrain/TOPO, ``Topo_utils.py``
    (``create_Z``, ``h_func``, ``find_idx_set_updated``).

    >>> import numpy as np, refimpl
    >>> W = np.array([[0.0, 0.8, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # the edge 0 → 1
    >>> small, large = refimpl.structure_learning.topo_swap_candidates(W, np.array([0, 1, 2]))
    >>> small  # d = 3: one pair; G_h = 0 for (2, 0) and (2, 1) (no path back), the lower flat index
    array([[2, 0]])
    >>> large  # size 4 > the 3 forbidden pairs: all, by G_h = 0, 0, 0.8 (the path 0 ⇝ 1)
    array([[2, 0],
           [2, 1],
           [1, 0]])
    """
    d = W.shape[0]
    # float64 whatever the dtype: a ranking must not flip with the rounding of G_h
    N, q, _ = m_matrix_factor(np.abs(np.asarray(W, dtype=np.float64)) / float(s))
    G_h = m_matrix_inverse(N, q).T / float(s)  # (sI − |W|)^{−T}
    position = np.empty(d, dtype=np.int64)
    position[np.asarray(order)] = np.arange(d)
    forbidden = position[:, None] >= position[None, :]  # i not before j
    np.fill_diagonal(forbidden, False)
    rows, columns = np.nonzero(forbidden)  # row-major: increasing flat index
    values = G_h[rows, columns]
    ranked = np.argsort(values, kind="stable")  # ties: lowest flat index first
    default_small, default_large = candidate_sizes(d)
    chosen = []
    for size in (
        default_small if size_small is None else size_small,
        default_large if size_large is None else size_large,
    ):
        size = min(int(size), values.shape[0])
        if size == 0:
            keep = np.zeros(0, dtype=np.int64)
        elif official_ties:
            threshold = values[ranked[size - 1]]
            keep = np.nonzero(values <= threshold)[0]  # row-major, every tie
        else:
            keep = ranked[:size]
        chosen.append(np.stack([rows[keep], columns[keep]], axis=1).astype(np.int64))
    return (chosen[0], chosen[1]), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    topo_acyclicity_logdet_abs,
    name="topo-logdet-ignores-sign",
    source="Duntrain/TOPO, Topo_utils.py, h_func (h_type='log_det'): "
    "`h = -np.linalg.slogdet(M)[1] + d*np.log(s)`, `G_h = inv(M).T`",
    official="takes log|det(sI − |W|)| and ignores the sign, so outside the M-matrix domain "
    "ρ(|W|) < s it returns a finite value (possibly negative) for a W that has cycles stronger "
    "than the domain allows",
    paper="h is defined on the M-matrix domain only (DAGMA, Thm. 1): refimpl refuses W outside it "
    "with an InputError (check_domain=False reproduces the official value)",
    example=Example(
        args=(np.array([[0.0, 2.0], [2.0, 0.0]]),),
        official={"h": -1.0986},
        reference={"raises": "InputError"},
        note="sI − |W| = [[1, −2], [−2, 1]]: det = −3, log|det| = log 3",
    ),
    flag={"check_domain": False},
)

known_deviation(
    topo_swap_candidates,
    name="topo-candidates-keep-ties",
    source="Duntrain/TOPO, Topo_utils.py, find_idx_set_updated: `values[size − 1]` as a threshold, "
    "`np.where(G_h <= thres and Z)`",
    official="keeps every forbidden pair with G_h ≤ the size-th smallest value, in row-major order: "
    "ties (typically the many pairs with G_h = 0, no path) return more than `size` pairs; it also "
    "asserts size_large ≤ d(d − 1)/2 and size_small ≥ 1",
    paper="the search space has the stated size: the `size` smallest G_h, ties by the lowest flat "
    "index (a size beyond the d(d − 1)/2 forbidden pairs returns them all)",
    example=Example(
        args=(np.zeros((3, 3)), np.array([0, 1, 2])),
        kwargs={"size_small": 1, "size_large": 2},
        official={"pairs_small.shape": [3, 2], "pairs_large.shape": [3, 2]},
        reference={"pairs_small.shape": [1, 2], "pairs_large.shape": [2, 2]},
        note="W = 0: G_h = I, every forbidden pair has G_h = 0",
    ),
    flag={"official_ties": True},
)
