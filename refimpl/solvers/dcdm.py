"""The Deep Conjugate Direction Method iteration (A Deep Conjugate Direction Method for Iteratively
Solving Linear Systems, Kaneda et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Function, InputError, IntScalar, Paper, RealScalar, op

__all__ = ["PAPER", "dcdm_solve"]

PAPER = Paper(
    "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
    arxiv="2205.10763",
    year=2023,
    code="ayano721/2023_DCDM",
)

# a direction with qᵀAq below CURVATURE_GUARD · n · eps · max|A| · ‖q‖² carries no curvature
# beyond the rounding error of the product itself (the guard of dcdm_loss)
CURVATURE_GUARD = 16.0
# a matrix counts as symmetric when max |A − Aᵀ| is within this many ulp of max |A|
SYMMETRY_ULPS = 64.0


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _check(arguments) -> None:
    a = _host(arguments["A"])
    scale = float(np.abs(a).max())
    asymmetry = float(np.abs(a - a.T).max())
    if asymmetry > SYMMETRY_ULPS * np.finfo(a.dtype).eps * scale:
        raise ArgumentError(
            "A",
            "a symmetric matrix (max |A − Aᵀ| within 64 ulp of max |A|)",
            f"max |A − Aᵀ| = {asymmetry:.3g}",
        )
    if scale == 0:
        raise ArgumentError("A", "a nonzero symmetric positive (semi)definite matrix", "A = 0")


def _direction(model, r_normalized, iteration):
    """The model's output for the normalized residual, as an array of the system's dtype."""
    q = model(r_normalized)
    q = np.asanyarray(q.get() if hasattr(q, "get") else q)
    if q.shape != r_normalized.shape or q.dtype.kind not in "fiu":
        raise InputError(
            f"dcdm_solve: argument 'model': expected a callable returning a real array of shape "
            f"{r_normalized.shape} (a search direction), got {q.dtype} of shape {q.shape} at "
            f"iteration {iteration}"
        )
    q = q.astype(r_normalized.dtype, copy=True)
    if not np.all(np.isfinite(q)):
        raise InputError(
            f"dcdm_solve: argument 'model': expected finite search directions, got a non-finite value at "
            f"iteration {iteration}"
        )
    return q


@op(
    inputs={
        "A": FloatArray("n", "n"),
        "b": FloatArray("n"),
        "x0": FloatArray("n"),
        "model": Function(),
        "window": IntScalar(1),
        "tol": RealScalar(0),
        "max_iter": IntScalar(0),
    },
    outputs=("x", "residual_norms", "iterations", "converged"),
    check=_check,
)
def dcdm_solve(A, b, x0, model, *, window=2, tol=1e-10, max_iter=100):  # noqa: N803 - the paper's matrix
    r"""DCDM: conjugate directions from a learned model, A-orthogonalized against the last few.

    The conjugate gradient method searches along the residual, made A-conjugate to the previous
    search direction. DCDM replaces the residual by a network's prediction ``f(r/‖r‖)`` of the
    error ``A⁻¹r`` (trained with ``dcdm_loss``), makes it A-orthogonal to the last k search
    directions only (k = 2 in the official code, where CG needs one), and takes the exact line
    minimizer of the energy norm along it. A good model makes each direction close to the
    error itself, so the residual drops by orders of magnitude per step where CG crawls.

    Iteration (the official ``dcdm``), for i = 0, 1, … while ``i < max_iter``::

        r_0 = b − A x_0;  stop at once (0 iterations) if ‖r_0‖ = 0
        q   = f(r_i/‖r_i‖)
        q  ← q − Σ_{p ∈ last k directions} p · (qᵀAp)/(pᵀAp)     (coefficients from the unmodified q)
        α   = qᵀr_i / qᵀAq
        x_{i+1} = x_i + α q
        r_{i+1} = b − A x_{i+1}          (recomputed, not updated: no drift of the recurrence)
        stop when ‖r_{i+1}‖ < tol · ‖r_0‖  (or r_{i+1} = 0 exactly)

    With the identity model the directions are CG's (the residual is already A-conjugate to
    every direction but the last), so the iterates are CG's and converge in at most n steps in
    exact arithmetic; with ``f(r) = M r`` for a symmetric positive definite M they are those of
    CG preconditioned by M. The step α makes ``r_{i+1} ⟂ q``, so ‖x − x*‖_A never increases.

    Pitfalls. A direction with ``qᵀAq`` zero up to rounding (a zero output, one in the null
    space of a singular A, or one inside the span of the last k directions, which the
    A-orthogonalization reduces to 0: a 1 × 1 system asked for a second step) has no defined
    step: refused with InputError naming the iteration (the official code divides by 0).
    The official fluid matrices are singular (zero rows outside the fluid, the constants in the
    null space with pure Neumann boundaries); the method works there when b lies in the range
    of A, and the official CG test routines project the constant vector out of b (not done
    here: pass a consistent b). The official code runs in float32, where a relative tolerance
    below ~1e-6 is never reached and the loop runs to ``max_iter``. The official ``fluid=True``
    mode feeds the unnormalized residual to the model; compose the model accordingly.

    Not differentiable (a solver; compared on the solution and on the stopping behaviour).

    Args:
        A: (n, n) symmetric positive definite (or semidefinite with b in its range), float32 or
            float64.
        b: (n,) right-hand side, same dtype.
        x0: (n,) initial guess (the official runs start at 0).
        model: ``model(r) -> q``, the direction model: called with the normalized residual (n,)
            in the system's dtype, returns a real array of shape (n,) (cast to that dtype). The
            identity gives CG.
        window: k >= 1, how many previous directions q is A-orthogonalized against (official: 2).
        tol: relative tolerance on the residual norm (official default 1e-10).
        max_iter: the most iterations (official default 100); 0 returns x0.

    Returns:
        x: (n,) the last iterate.
        residual_norms: (iterations + 1,) ``‖r_0‖, ‖r_1‖, …`` (the official ``res_arr``).
        iterations: int64 0-d array, the number of iterations run.
        converged: bool 0-d array, whether ``‖r‖ < tol·‖r_0‖`` was reached (or r = 0
            exactly; True when r_0 = 0).

    Reference: Kaneda, Akar, Chen, Kala, Hyde, Teran, *A Deep Conjugate Direction Method for
    Iteratively Solving Linear Systems*, arXiv:2205.10763 (ICML 2023), the DCDM algorithm; official code
    ayano721/2023_DCDM, ``lib/conjugate_gradient.py`` (``dcdm``: k = 2, ``tol=1e-10``, ``max_it=100``).

    >>> import numpy as np, refimpl
    >>> A, b = np.array([[4.0, 1.0], [1.0, 3.0]]), np.array([1.0, 2.0])
    >>> x, norms, iterations, converged = refimpl.solvers.dcdm_solve(A, b, np.zeros(2), lambda r: r)
    >>> x.round(6), int(iterations), bool(converged)        # CG: exact in n = 2 steps, x* = (1, 7)/11
    (array([0.090909, 0.636364]), 2, True)
    """
    n = b.shape[0]
    dtype = b.dtype.type
    x = x0.copy()
    r = b - A @ x
    norm_r = np.sqrt(r @ r)
    norms = [norm_r]
    threshold = tol * norm_r
    converged = bool(norm_r == 0)
    guard = CURVATURE_GUARD * n * np.finfo(b.dtype).eps * float(np.abs(A).max())
    directions: list[np.ndarray] = []  # the last `window` directions p, newest last
    products: list[np.ndarray] = []  # A p
    curvatures: list = []  # pᵀAp
    iterations = 0
    while not converged and iterations < max_iter:
        q = _direction(model, r / norm_r, iterations)
        coefficients = [(q @ a_p) / curvature for a_p, curvature in zip(products, curvatures, strict=True)]
        for p, coefficient in zip(directions[::-1], coefficients[::-1], strict=True):  # newest first
            q = q - p * coefficient
        a_q = A @ q
        curvature = q @ a_q
        if not curvature > guard * float(q @ q):
            raise InputError(
                f"dcdm_solve: argument 'model': expected directions with qᵀAq > 0 beyond rounding (a zero "
                f"output, a null-space direction of A, or an output inside the span of the last {window} "
                f"directions, which the A-orthogonalization removes, has no step), got qᵀAq = "
                f"{float(curvature):.3g} at iteration {iterations}"
            )
        alpha = (q @ r) / curvature
        x = x + alpha * q
        r = b - A @ x  # recomputed, as the official code does
        norm_r = np.sqrt(r @ r)
        norms.append(norm_r)
        directions, products, curvatures = (
            (directions + [q])[-window:],
            (products + [a_q])[-window:],
            (curvatures + [curvature])[-window:],
        )
        iterations += 1
        converged = bool(norm_r < threshold or norm_r == 0)  # r = 0 exactly: nothing left (tol = 0)
    residual_norms = np.asarray(norms, dtype=dtype)
    outputs = (x, residual_norms, np.asarray(iterations, dtype=np.int64), np.asarray(converged))
    return outputs, None
