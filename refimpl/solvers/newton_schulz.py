"""Iterative Newton (Newton–Schulz) inversion for in-context least squares (Transformers Learn
Higher-Order Optimization Methods for In-Context Learning, Fu et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, Paper, RealScalar, op

__all__ = ["PAPER", "iterative_newton_predictor", "newton_schulz_pinv", "newton_schulz_step"]

PAPER = Paper(
    "Transformers Learn Higher-Order Optimization Methods for In-Context Learning: "
    "A Study with Linear Models",
    arxiv="2310.17086",
    year=2024,
    code="DeqingFu/transformers-icl-second-order",
)

# a matrix counts as symmetric when max |S − Sᵀ| is within this many ulp of max |S|
SYMMETRY_ULPS = 64.0


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _check_symmetric(s: np.ndarray, name: str) -> None:
    scale = float(np.abs(s).max())
    asymmetry = float(np.abs(s - s.T).max())
    if asymmetry > SYMMETRY_ULPS * np.finfo(s.dtype).eps * scale:
        raise ArgumentError(
            name, "a symmetric matrix S = XᵀX (max |S − Sᵀ| within 64 ulp of max |S|)", f"{asymmetry:.3g}"
        )
    if scale == 0:
        raise ArgumentError(name, "a nonzero matrix (S = 0 has no scale for M₀ = αS)", "S = 0")


def _check_pinv(arguments) -> None:
    _check_symmetric(_host(arguments["S"]), "S")


def _check_predictor(arguments) -> None:
    x = _host(arguments["X"])
    if not np.any(x):
        raise ArgumentError("X", "a nonzero design matrix (S = XᵀX = 0 has no scale for M₀ = αS)", "X = 0")


# -- one step -----------------------------------------------------------------------------------------
@op(
    inputs={"M": FloatArray("d", "d"), "S": FloatArray("d", "d")},
    outputs=("M_next",),
    differentiable=("M", "S"),
)
def newton_schulz_step(M, S):  # noqa: N803 - the paper's matrices
    r"""One Newton–Schulz step towards ``S⁻¹`` (or ``S⁺``): ``M' = 2M − M S M``.

    Newton's method for the root of ``f(M) = M⁻¹ − S`` gives ``M' = M(2I − S M)``. Its error
    ``E = I − M S`` squares at every step (``I − M'S = (I − MS)²``), so once ‖E‖ < 1 the number of
    correct digits doubles per step. The paper shows that the predictions of successive
    Transformer layers match successive steps of this iteration on in-context linear
    regression (S = XᵀX); only matrix products are needed, which attention can emulate.

    Forward, as computed (the official ``inv @ (2I − S inv)``, expanded)::

        P  = S M
        M' = 2M − M P

    Backward. ``dM' = 2dM − dM S M − M dS M − M S dM``. For a cotangent ``Ḡ`` of M' and the
    Frobenius pairing ``⟨Ḡ, X⟩ = tr(ḠᵀX)``: ``⟨Ḡ, dM SM⟩ = ⟨Ḡ(SM)ᵀ, dM⟩``,
    ``⟨Ḡ, MS dM⟩ = ⟨(MS)ᵀḠ, dM⟩`` and ``⟨Ḡ, M dS M⟩ = ⟨MᵀḠMᵀ, dS⟩``; so::

        M̄ = 2Ḡ − Ḡ (SM)ᵀ − (MS)ᵀ Ḡ
        S̄ = −Mᵀ Ḡ Mᵀ

    The formula holds for any square S and M (symmetry is not assumed here).

    Args:
        M: (d, d) current approximation of the inverse, float32 or float64.
        S: (d, d) the matrix to invert (``XᵀX`` in the paper), same dtype.

    Returns:
        M_next: (d, d) ``2M − M S M``.

    Reference: Fu, Chen, Jia, Sharan, *Transformers Learn Higher-Order Optimization Methods for
    In-Context Learning: A Study with Linear Models*, arXiv:2310.17086 (NeurIPS 2024), Iterative
    Newton's Method; official code DeqingFu/transformers-icl-second-order, ``src/models.py``
    (``LeastSquaresModelNewtonMethod.newton_inv``: ``inv = inv @ (2*eye - A@inv)``).

    >>> import numpy as np, refimpl
    >>> # scalar case: S = 2, M = 0.25 → 2·0.25 − 0.25·2·0.25 = 0.375 (towards 1/2)
    >>> refimpl.solvers.newton_schulz_step(np.array([[0.25]]), np.array([[2.0]]))
    array([[0.375]])
    """
    s_m = S @ M
    m_next = 2 * M - M @ s_m
    return m_next, (M, S, s_m)


@newton_schulz_step.defvjp
def newton_schulz_step_backward(residuals, g_m_next):
    M, S, s_m = residuals  # noqa: N806
    m_s = M @ S
    g_m = 2 * g_m_next - g_m_next @ s_m.T - m_s.T @ g_m_next
    g_s = -(M.T @ g_m_next @ M.T)
    return g_m, g_s


# -- the iteration ------------------------------------------------------------------------------------
def _initial(s: np.ndarray, alpha) -> np.ndarray:
    """M₀ = αS (the official ``alpha * A.T``, S symmetric), α = ``1/‖SSᵀ‖_F`` by default.

    ``torch.linalg.norm`` of a matrix is the Frobenius norm. Formed with S scaled by c = max|S|
    (``αS = Ŝ/(c‖ŜŜᵀ‖_F)``, Ŝ = S/c): SSᵀ would underflow or overflow for |S| ~ 1e∓160.
    """
    if alpha is not None:
        return float(alpha) * s.T
    c = float(np.abs(s).max())
    s_hat = s / c
    return s_hat.T / (c * float(np.linalg.norm(s_hat @ s_hat.T)))


def _iterate(s, alpha, num_steps, tol):
    """Newton–Schulz steps from M₀ in float64; the record of step norms ‖M_{k+1} − M_k‖_F."""
    m = _initial(s, alpha)
    norms = []
    iterations = 0
    converged = False
    while iterations < num_steps:
        m_next = 2 * m - m @ (s @ m)
        step = float(np.linalg.norm(m_next - m))  # = ‖M_k − M_k S M_k‖_F, the Penrose residual
        norms.append(step)
        m = m_next
        iterations += 1
        if tol > 0 and step <= tol * float(np.linalg.norm(m)):
            converged = True
            break
    return m, (np.asarray(norms), np.asarray(iterations, dtype=np.int64), np.asarray(converged))


@op(
    inputs={
        "S": FloatArray("d", "d"),
        "num_steps": IntScalar(0),
        "alpha": RealScalar(0, low_open=True, optional=True),
        "tol": RealScalar(0),
    },
    outputs=("M", "step_norms", "iterations", "converged"),
    check=_check_pinv,
)
def newton_schulz_pinv(S, *, num_steps=3, alpha=None, tol=0.0):  # noqa: N803
    r"""Iterative Newton inversion of a symmetric PSD ``S = XᵀX``: ``M_k → S⁺``.

    The iteration starts at ``M₀ = αS`` and takes Newton–Schulz steps ``M_{k+1} = 2M_k − M_k S M_k``.
    The error recursion ``I − M_{k+1}S = (I − M_kS)²`` converges (to ``S⁺`` for a singular S,
    at a rate set by its smallest nonzero eigenvalue) iff ``0 < αλᵢ(S)² < 2`` on every nonzero
    eigenvalue. The default α = ``1/‖SSᵀ‖_F`` (official code) satisfies it with margin, since
    ``‖SSᵀ‖_F ≥ ‖SSᵀ‖₂ = λ_max(S)²``. PENDING: the paper's own α (usually quoted as
    ``2/‖SSᵀ‖₂``, which sits exactly on the convergence boundary) could not be pinned from the
    text; pass it as ``alpha`` if wanted. Stopping: after ``num_steps`` steps (official default
    3, ``LeastSquaresModelNewtonMethod(n_newton_steps=3)``), or earlier when the step
    ``‖M_{k+1} − M_k‖_F = ‖M_k − M_k S M_k‖_F ≤ tol·‖M_{k+1}‖_F`` (``tol = 0``, the default,
    runs every step as the official loop and reports ``converged = False``; the step is the
    residual of the Penrose condition ``MSM = M``, which the pseudo-inverse satisfies).

    Precision: the iterates are formed in float64 whatever the input dtype and the outputs
    cast back (an iteration run in float32 stalls near 1e-7 relative error, and its ``SSᵀ``
    underflows for |S| ~ 1e-20); the default α is formed with S scaled by max|S|.

    Pitfall (singular S): a component of M along a null vector v of S is doubled by every step
    (``vᵀS = 0`` removes it from ``MSM``), so rounding noise there grows like 2^k once the
    range has converged: on a random rank-2 S of size 4 the error to S⁺ is 4e-12 after 20
    steps and 5e-6 after 40. Stop with ``tol`` (e.g. 1e-12) instead of running many steps.

    Reference-only (a whole solver, not differentiable: differentiate ``newton_schulz_step``).

    Args:
        S: (d, d) symmetric positive semidefinite, nonzero, float32 or float64.
        num_steps: the most Newton–Schulz steps (official default 3); 0 returns M₀ = αS.
        alpha: the initial scale (> 0); None (default) gives the official ``1/‖SSᵀ‖_F``.
        tol: relative tolerance on the step norm (default 0: every step is run).

    Returns:
        M: (d, d) the last iterate (≈ S⁺).
        step_norms: (iterations,) ``‖M_{k+1} − M_k‖_F`` per step.
        iterations: int64 0-d array, the steps taken.
        converged: bool 0-d array, whether the tolerance stopped the loop.

    Reference: Fu et al., arXiv:2310.17086, Iterative Newton's Method; official code
    DeqingFu/transformers-icl-second-order, ``src/models.py``
    (``LeastSquaresModelNewtonMethod.newton_inv``: ``alpha = 1/torch.linalg.norm(A @ A.T)``,
    ``inv = alpha * A.T``).

    >>> import numpy as np, refimpl
    >>> S = np.diag([1.0, 2.0])             # α = 1/‖diag(1, 4)‖_F = 1/√17
    >>> M, norms, iterations, converged = refimpl.solvers.newton_schulz_pinv(S, num_steps=7)
    >>> M.round(10), int(iterations), bool(converged)
    (array([[1. , 0. ],
           [0. , 0.5]]), 7, False)
    >>> [f"{step:.1e}" for step in norms[3:]]               # correct digits double per step
    ['9.7e-02', '1.2e-02', '1.4e-04', '1.9e-08']
    """
    m, (norms, iterations, converged) = _iterate(S.astype(np.float64), alpha, num_steps, tol)
    dtype = S.dtype
    return (m.astype(dtype), norms.astype(dtype), iterations, converged), None


@op(
    inputs={
        "X": FloatArray("n", "d"),
        "y": FloatArray("n"),
        "num_steps": IntScalar(0),
        "alpha": RealScalar(0, low_open=True, optional=True),
        "tol": RealScalar(0),
    },
    outputs=("w", "step_norms", "iterations", "converged"),
    check=_check_predictor,
)
def iterative_newton_predictor(X, y, *, num_steps=3, alpha=None, tol=0.0):  # noqa: N803
    r"""The Iterative Newton least-squares predictor ``ŵ_k = M_k Xᵀy`` with ``M_k → (XᵀX)⁺``.

    The paper compares each Transformer layer with this predictor at some number of steps:
    ``S = XᵀX``, ``M_k`` from ``newton_schulz_pinv``, and the weights ``ŵ_k = M_k Xᵀy``, which
    converge to the minimum-norm least-squares solution ``X⁺y``. The iteration, its default
    α = ``1/‖SSᵀ‖_F`` (official code; the paper's α is PENDING) and its stopping rule are
    ``newton_schulz_pinv``'s.

    Reference-only (a whole solver).

    Args:
        X: (n, d) in-context inputs, nonzero, float32 or float64.
        y: (n,) in-context targets, same dtype.
        num_steps: the most Newton–Schulz steps (official default 3).
        alpha: the initial scale; None (default) gives the official ``1/‖SSᵀ‖_F``.
        tol: relative tolerance on the step norm of M (default 0: every step is run).

    Returns:
        w: (d,) ``M_k Xᵀy``.
        step_norms, iterations, converged: ``newton_schulz_pinv``'s record on S = XᵀX.

    Reference: Fu et al., arXiv:2310.17086; official code DeqingFu/transformers-icl-second-order,
    ``src/models.py`` (``LeastSquaresModelNewtonMethod.__call__``: ``X = train_x.T @ train_x``,
    ``y = train_x.T @ train_y``, ``w = inv @ y``).

    >>> import numpy as np, refimpl
    >>> X, y = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]]), np.array([2.0, 2.0, 0.0])
    >>> w, *_ = refimpl.solvers.iterative_newton_predictor(X, y, num_steps=20)
    >>> w.round(10)                          # least squares: w = (1, 1)
    array([1., 1.])
    """
    x, dtype = X.astype(np.float64), X.dtype
    m, (norms, iterations, converged) = _iterate(x.T @ x, alpha, num_steps, tol)
    w = m @ (x.T @ y.astype(np.float64))
    return (w.astype(dtype), norms.astype(dtype), iterations, converged), None
