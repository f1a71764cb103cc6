"""Successive over-relaxation and the Tsallis-INF bandit that picks its ω (Learning to Relax: Setting
Solver Parameters Across a Sequence of Linear System Instances, Khodak et al.)."""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from ..authoring import (
    ArgumentError,
    BoolArray,
    FloatArray,
    Function,
    InputError,
    IntScalar,
    Paper,
    RealScalar,
    op,
)

__all__ = ["NEWTON_STEPS", "PAPER", "omega_bandit_step", "sor_red_black_solve", "sor_solve"]

PAPER = Paper(
    "Learning to Relax: Setting Solver Parameters Across a Sequence of Linear System Instances",
    arxiv="2310.02246",
    year=2024,
    code="mkhodak/learning-to-relax",
)

# the official solvers/sor.m: ``tol`` is its argument (1e-8 in every script), the loop stops at 10 000
TOL = 1e-8
MAX_ITER = 10_000
# learners/TsallisINF.m, predict: 20 Newton steps on the normalizer, from x = −1
NEWTON_STEPS = 20


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _check_diagonal(arguments) -> None:
    diagonal = np.diag(_host(arguments["A"]))
    zero = np.flatnonzero(diagonal == 0)
    if zero.size:
        raise ArgumentError(
            "A", "a matrix with a nonzero diagonal (SOR divides by a_ii)", f"a_ii = 0 at i = {zero[0]}"
        )


def _check_red_black(arguments) -> None:
    _check_diagonal(arguments)
    a = _host(arguments["A"])
    red = _host(arguments["red"])
    same_colour = (red[:, None] == red[None, :]) & ~np.eye(a.shape[0], dtype=bool)
    coupled = np.argwhere(same_colour & (a != 0))
    if coupled.size:
        i, j = (int(v) for v in coupled[0])
        raise ArgumentError(
            "red",
            "a two-colouring of A's graph (no nonzero a_ij between two points of one colour)",
            f"a_{i}{j} = {float(a[i, j]):.3g} couples two {'red' if red[i] else 'black'} points",
        )


def _record(norms, iterations, converged, dtype):
    return np.asarray(norms, dtype=dtype), np.asarray(iterations, dtype=np.int64), np.asarray(converged)


@op(
    inputs={
        "A": FloatArray("n", "n"),
        "b": FloatArray("n"),
        "x0": FloatArray("n"),
        "omega": RealScalar(0, 2, low_open=True, high_open=True),
        "tol": RealScalar(0),
        "max_iter": IntScalar(0),
    },
    outputs=("x", "residual_norms", "iterations", "converged"),
    check=_check_diagonal,
)
def sor_solve(A, b, x0, *, omega, tol=TOL, max_iter=MAX_ITER):  # noqa: N803 - the paper's matrix
    r"""Successive over-relaxation (SOR): Gauss–Seidel sweeps extrapolated by a factor ω.

    Gauss–Seidel updates the unknowns one at a time, each from its own equation with the
    newest values of the others. SOR moves each unknown ω times as far as Gauss–Seidel would
    (ω = 1 is Gauss–Seidel); for symmetric positive definite A it converges exactly for
    ω ∈ (0, 2), and the best ω can cut the iteration count by an order of magnitude, which is
    what the paper's bandit (``omega_bandit_step``) learns across a sequence of systems.

    Forward, one sweep (paper §2), for i = 1, …, n in order::

        x_i ← (1 − ω) x_i + (ω/a_ii) (b_i − Σ_{j<i} a_ij x_j^new − Σ_{j>i} a_ij x_j^old)

    computed as the official ``solvers/sor.m`` does, in matrix form: with ``D = diag(A)``,
    ``L`` the strict lower triangle and ``M = D/ω + L``, ``x ← x + M⁻¹ r`` with ``r = b − Ax``,
    one forward substitution. The two are one map: ``M x_new = M x + b − (L + D + U) x`` gives
    ``D x_new/ω = D x/ω − D x + b − L x_new − U x``, the sweep above. Then ``r = b − A x`` is
    recomputed and the loop stops once ``‖r_k‖₂ < tol·‖r_0‖₂`` (official; with the official
    x0 = 0, ‖r_0‖ = ‖b‖, the paper's relative residual). The cost the paper learns is the
    iteration count.

    Not differentiable (a solver: compared on the solution and on the stopping behaviour).
    Fast backends run the sweep (Numba: the componentwise loop; CuPy: the triangular solve).

    Args:
        A: (n, n) system matrix with a nonzero diagonal (SPD for guaranteed convergence).
        b: (n,) right-hand side.
        x0: (n,) initial guess (official: zeros).
        omega: the relaxation factor, in (0, 2).
        tol: relative residual tolerance (official scripts: 1e-8).
        max_iter: the most sweeps (official ``sor.m``: 10 000); 0 returns x0.

    Returns:
        x: (n,) the last iterate.
        residual_norms: (iterations + 1,) ``‖r_0‖, ‖r_1‖, …``.
        iterations: int64 0-d, the sweeps run (the paper's cost).
        converged: bool 0-d, whether ``‖r‖ < tol·‖r_0‖`` was reached (True when r_0 = 0).

    Reference: Khodak, Chow, Balcan, Talwalkar, *Learning to Relax: Setting Solver Parameters
    Across a Sequence of Linear System Instances*, arXiv:2310.02246 (ICLR 2024), §2; official code
    mkhodak/learning-to-relax, ``solvers/sor.m`` (matrix form, stop rule, 10 000 iterations; tol 1e-8
    in ``scripts/learning.m``).

    >>> import numpy as np, refimpl
    >>> A, b = np.array([[2.0, -1.0], [-1.0, 2.0]]), np.array([1.0, 0.0])
    >>> x, norms, k, ok = refimpl.solvers.sor_solve(A, b, np.zeros(2), omega=1.0, max_iter=1)
    >>> x                   # Gauss–Seidel: x_1 = 1/2, then x_2 = (0 + x_1)/2
    array([0.5 , 0.25])
    """
    x = x0.copy()
    m = np.diag(np.diag(A)) / A.dtype.type(omega) + np.tril(A, -1)
    r = b - A @ x
    norm_r = np.sqrt(r @ r)
    norms = [norm_r]
    threshold = tol * norm_r
    converged = bool(norm_r == 0)
    iterations = 0
    while not converged and iterations < max_iter:
        x = x + solve_triangular(m, r, lower=True)  # one SOR sweep
        r = b - A @ x
        norm_r = np.sqrt(r @ r)
        norms.append(norm_r)
        iterations += 1
        converged = bool(norm_r < threshold or norm_r == 0)
    return (x, *_record(norms, iterations, converged, b.dtype)), None


@op(
    inputs={
        "A": FloatArray("n", "n"),
        "b": FloatArray("n"),
        "x0": FloatArray("n"),
        "red": BoolArray("n"),
        "omega": RealScalar(0, 2, low_open=True, high_open=True),
        "tol": RealScalar(0),
        "max_iter": IntScalar(0),
    },
    outputs=("x", "residual_norms", "iterations", "converged"),
    check=_check_red_black,
)
def sor_red_black_solve(A, b, x0, red, *, omega, tol=TOL, max_iter=MAX_ITER):  # noqa: N803
    r"""Red-black SOR: all red points relaxed at once, then all black points from the new reds.

    On a grid whose 5-point stencil only couples neighbours, colour the points like a
    checkerboard: a red point's equation involves only black neighbours, so all reds can be
    updated in parallel, then all blacks from the new reds. It is SOR (``sor_solve``) in the
    ordering "every red, then every black" — different iterates from the natural ordering,
    the same asymptotic rate for consistently ordered matrices (the GPU-friendly form). Any
    matrix with a two-colouring of its graph works here:
    ``red`` is the colouring, and an entry coupling two points of one colour is refused.

    Forward, one sweep, with ``R`` the red and ``K`` the black indices::

        x_R ← (1 − ω) x_R + (ω/a_RR) (b_R − A_RK x_K)          (old blacks)
        x_K ← (1 − ω) x_K + (ω/a_KK) (b_K − A_KR x_R)          (new reds)

    computed as ``x_c ← x_c + ω (b_c − (A x)_c)/a_cc`` per colour c (A_cc is diagonal, so
    ``(Ax)_c − a_cc x_c = A_{c,other} x_other``); then ``r = b − A x`` and the stop rule of
    ``sor_solve`` (``‖r_k‖ < tol·‖r_0‖``, official ``sor.m``).

    Not differentiable (a solver). Fast backends run the colour sweeps in parallel.

    Args:
        A: (n, n) system matrix, nonzero diagonal, no coupling within a colour.
        b: (n,) right-hand side.
        x0: (n,) initial guess.
        red: (n,) bool, True for the red points (relaxed first).
        omega: the relaxation factor, in (0, 2).
        tol: relative residual tolerance (official: 1e-8).
        max_iter: the most sweeps (official: 10 000).

    Returns:
        x, residual_norms, iterations, converged: as ``sor_solve``.

    Reference: Khodak et al., arXiv:2310.02246 (ICLR 2024), §2 (SOR), official code
    mkhodak/learning-to-relax ``solvers/sor.m`` (stop rule, tolerance, cap); red-black ordering:
    Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., §4.1 and §12.4.

    >>> import numpy as np, refimpl
    >>> A, b = np.array([[2.0, -1.0], [-1.0, 2.0]]), np.array([1.0, 0.0])
    >>> x, *_ = refimpl.solvers.sor_red_black_solve(A, b, np.zeros(2), np.array([False, True]),
    ...                                             omega=1.0, max_iter=1)
    >>> x                   # red point 2 first: x_2 = (0 + 0)/2, then x_1 = (1 + x_2)/2
    array([0.5, 0. ])
    """
    x = x0.copy()
    dtype = A.dtype.type
    diagonal = np.diag(A)
    colours = (np.flatnonzero(red), np.flatnonzero(~red))  # red first
    r = b - A @ x
    norm_r = np.sqrt(r @ r)
    norms = [norm_r]
    threshold = tol * norm_r
    converged = bool(norm_r == 0)
    iterations = 0
    while not converged and iterations < max_iter:
        for points in colours:
            local = b[points] - A[points] @ x  # b_c − (Ax)_c: within the colour only a_cc x_c
            x[points] = x[points] + dtype(omega) * local / diagonal[points]
        r = b - A @ x
        norm_r = np.sqrt(r @ r)
        norms.append(norm_r)
        iterations += 1
        converged = bool(norm_r < threshold or norm_r == 0)
    return (x, *_record(norms, iterations, converged, b.dtype)), None


def tsallis_inf_probabilities(k, scale, t):
    """The ½-Tsallis-INF play distribution of ``learners/TsallisINF.m`` ``predict``.

    ``η = 2/√t``; 20 Newton steps on the normalizer x from −1, ``p_i = 4 (η (K_i/s − x))⁻²``,
    ``x ← x − (Σp − 1)/(η Σ p^{3/2})``; p is the last one evaluated (before the final x step).
    """
    eta = 2.0 / np.sqrt(t)
    x = -1.0
    for _ in range(NEWTON_STEPS):
        probabilities = 4.0 * (eta * (k / scale - x)) ** -2.0
        x = x - (probabilities.sum() - 1.0) / (eta * (probabilities**1.5).sum())
    return probabilities


def _check_bandit(arguments) -> None:
    if _host(arguments["grid"]).shape[0] < 1:
        raise ArgumentError("grid", "at least one ω", "an empty grid")


@op(
    inputs={
        "grid": FloatArray("d"),
        "K": FloatArray("d"),
        "losses": FloatArray("m"),
        "u": RealScalar(0, 1, high_open=True),
        "cost": Function(),
    },
    outputs=("index", "omega", "probabilities", "K_next", "losses_next"),
    allow_empty=("m",),
    check=_check_bandit,
)
def omega_bandit_step(grid, K, losses, u, cost):  # noqa: N803 - the paper's K
    r"""One round of the official Tsallis-INF bandit over a grid of SOR relaxation factors.

    The paper learns ω across a sequence of linear systems from bandit feedback: each round
    it plays one ω, runs SOR, and sees only that run's cost. Tsallis-INF (½-Tsallis entropy
    regularized FTRL, Zimmert & Seldin 2021) keeps importance-weighted cumulative losses
    ``K`` and plays ``p_i ∝ 4(η(K_i/s − x))⁻²`` with the normalizer x found by Newton's method.

    One round (official ``learners/TsallisINF.m``), with ``t = m + 1`` (m past rounds)::

        s   = 1 if m = 0 else mean(losses) − 1                  (the scale of the last update)
        η   = 2/√t;  x = −1;  20×: p = 4(η(K/s − x))⁻²,  x ← x − (Σp − 1)/(η Σ p^{3/2})
        i   = first index with u < cumsum(p)_i / Σp             (randsample: weights normalized)
        ω   = grid[i];  ℓ = cost(ω)
        losses_next = losses ++ [ℓ];  K_next = K,  K_next[i] += (ℓ − 1)/p_i

    (``p_i`` is the unnormalized Newton output, as the official ``obj.prob``; the next round's
    scale is ``mean(losses_next) − 1``.) The official scripts feed ``ℓ = (SOR iterations − 1)/100``
    (``scripts/learning.m``). Where p is not a valid weight vector (a scale of 0, e.g. every
    loss so far equal to 1, makes K/s = 0/0) the official ``randsample`` fails and its fallback
    draws uniformly; here the fallback returns and plays ``p = 1/d`` (the official code overwrites
    that with the invalid ``probs(i)`` right after: NaN in K, which no caller wants).

    Randomness is the input ``u`` (one uniform draw). Reference-only: bookkeeping of a bandit,
    not differentiable.

    Args:
        grid: (d,) the ω values (official: ``linspace(1, 1.9, ⌊(2T)^{1/3}⌋)`` in
            ``scripts/learning.m``; a d = 20 grid is ``linspace(1, 1.95, 20)``).
        K: (d,) importance-weighted cumulative losses (zeros at the start).
        losses: (m,) the losses of the past rounds (empty at the start).
        u: a uniform draw in [0, 1).
        cost: ``cost(omega) -> float``, this round's loss for the played ω.

    Returns:
        index: int64 0-d, the arm played.
        omega: 0-d, ``grid[index]``.
        probabilities: (d,) the Newton output p (unnormalized, as the official code keeps it;
            1/d each under the uniform fallback).
        K_next: (d,) the updated cumulative losses.
        losses_next: (m + 1,) the losses with this round's appended.

    Reference: Khodak et al., arXiv:2310.02246 (ICLR 2024), §3 (Tsallis-INF over ω); official code
    mkhodak/learning-to-relax, ``learners/TsallisINF.m`` (``predict``, ``update``).

    >>> import numpy as np, refimpl
    >>> out = refimpl.solvers.omega_bandit_step(np.array([1.0, 1.5]), np.zeros(2), np.zeros(0),
    ...                                         0.75, lambda omega: 3.0)
    >>> int(out[0]), float(out[1]), out[2].round(6), out[3]   # uniform p = 1/2: K_2 = 2/0.5
    (1, 1.5, array([0.5, 0.5]), array([0., 4.]))
    """
    dtype = K.dtype.type
    d = grid.shape[0]
    t = losses.shape[0] + 1
    scale = 1.0 if losses.shape[0] == 0 else float(losses.astype(np.float64).mean()) - 1.0
    with np.errstate(all="ignore"):
        probabilities = tsallis_inf_probabilities(K.astype(np.float64), scale, t)
    if np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0) and probabilities.sum() > 0:
        cumulative = np.cumsum(probabilities) / probabilities.sum()
        index = min(int(np.searchsorted(cumulative, u, side="right")), d - 1)
        played = probabilities[index]
    else:  # the official randsample fallback: uniform
        index = min(int(u * d), d - 1)
        probabilities = np.full(d, 1.0 / d)
        played = probabilities[index]
    omega = grid[index]
    loss = cost(omega)
    try:
        loss = float(loss)
    except (TypeError, ValueError):
        raise InputError(
            f"omega_bandit_step: argument 'cost': expected a real number, got {loss!r}"
        ) from None
    if not np.isfinite(loss):
        raise InputError(
            f"omega_bandit_step: argument 'cost': expected a finite loss, got {loss} for ω = {omega}"
        )
    k_next = K.copy()
    k_next[index] = k_next[index] + dtype((loss - 1.0) / played)
    losses_next = np.concatenate([losses, np.asarray([loss], dtype=losses.dtype)])
    return (
        np.asarray(index, dtype=np.int64),
        np.asarray(omega, dtype=grid.dtype),
        probabilities.astype(K.dtype),
        k_next,
        losses_next,
    ), None
