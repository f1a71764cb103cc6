"""SOR and red-black SOR: Numba sweeps.

Mirrors ``refimpl/solvers/sor.py``. ``sor_solve`` runs the paper's componentwise sweep
(``x_i ← (1 − ω)x_i + (ω/a_ii)(b_i − Σ_{j≠i} a_ij x_j)`` with the newest x_j), which is the
reference's triangular solve ``x ← x + (D/ω + L)⁻¹ r`` written out; the sweep is sequential
by nature, so the whole loop (sweeps, residual, stop rule) is one serial kernel. Red-black
SOR relaxes every point of one colour from the other colour only, so each colour's sweep is
a row-parallel kernel. Row sums accumulate in float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@njit(cache=True, fastmath={"reassoc"})
def _residual_norm(a, b, x, r):
    total = 0.0
    for i in range(a.shape[0]):
        row = 0.0
        for j in range(a.shape[1]):
            row += np.float64(a[i, j]) * np.float64(x[j])
        r[i] = np.float64(b[i]) - row
        total += r[i] * r[i]
    return math.sqrt(total)


@njit(cache=True, fastmath={"reassoc"})
def _sor_loop(a, b, x, omega, tol, max_iter, norms):
    n = a.shape[0]
    r = np.empty(n, dtype=np.float64)
    norm = _residual_norm(a, b, x, r)
    norms[0] = norm
    threshold = tol * norm
    converged = norm == 0.0
    iterations = 0
    while not converged and iterations < max_iter:
        for i in range(n):  # sequential: x_j for j < i are already the new values
            lower = 0.0
            for j in range(i):
                lower += np.float64(a[i, j]) * np.float64(x[j])
            upper = 0.0
            for j in range(i + 1, n):
                upper += np.float64(a[i, j]) * np.float64(x[j])
            off_diagonal = np.float64(b[i]) - lower - upper
            x[i] = (1.0 - omega) * np.float64(x[i]) + omega * off_diagonal / np.float64(a[i, i])
        norm = _residual_norm(a, b, x, r)
        iterations += 1
        norms[iterations] = norm
        converged = norm < threshold or norm == 0.0
    return iterations, converged


@parallel_kernel(fastmath={"reassoc"})
def _relax_colour(a, b, x, points, omega):
    for p in prange(points.shape[0]):  # no coupling within a colour: the rows are independent
        i = points[p]
        row = 0.0
        for j in range(a.shape[1]):
            row += np.float64(a[i, j]) * np.float64(x[j])
        x[i] = np.float64(x[i]) + omega * (np.float64(b[i]) - row) / np.float64(a[i, i])


@parallel_kernel(fastmath={"reassoc"})
def _residual_rows(a, b, x, r):
    for i in prange(a.shape[0]):
        row = 0.0
        for j in range(a.shape[1]):
            row += np.float64(a[i, j]) * np.float64(x[j])
        r[i] = np.float64(b[i]) - row


def sor_solve_forward(A, b, x0, *, omega, tol=1e-8, max_iter=10_000):  # noqa: N803
    a = np.ascontiguousarray(A)
    x = np.array(x0, copy=True)
    norms = np.empty(max_iter + 1, dtype=np.float64)
    iterations, converged = _sor_loop(
        a, np.ascontiguousarray(b), x, float(omega), float(tol), int(max_iter), norms
    )
    record = (
        norms[: iterations + 1].astype(b.dtype),
        np.asarray(iterations, dtype=np.int64),
        np.asarray(converged),
    )
    return (x, *record), None


def sor_red_black_solve_forward(A, b, x0, red, *, omega, tol=1e-8, max_iter=10_000):  # noqa: N803
    a = np.ascontiguousarray(A)
    rhs = np.ascontiguousarray(b)
    x = np.array(x0, copy=True)
    colours = (np.flatnonzero(red).astype(np.int64), np.flatnonzero(~red).astype(np.int64))
    r = np.empty(b.shape[0], dtype=np.float64)
    _residual_rows(a, rhs, x, r)
    norm = math.sqrt(float(r @ r))
    norms = [norm]
    threshold = tol * norm
    converged = norm == 0.0
    iterations = 0
    while not converged and iterations < max_iter:
        for points in colours:
            _relax_colour(a, rhs, x, points, float(omega))
        _residual_rows(a, rhs, x, r)
        norm = math.sqrt(float(r @ r))
        norms.append(norm)
        iterations += 1
        converged = norm < threshold or norm == 0.0
    record = (np.asarray(norms, dtype=b.dtype), np.asarray(iterations, dtype=np.int64), np.asarray(converged))
    return (x, *record), None


IMPLS = {
    "sor_solve": Impl(sor_solve_forward),
    "sor_red_black_solve": Impl(sor_red_black_solve_forward),
}
