"""SOR and red-black SOR on CuPy.

Mirrors ``refimpl/solvers/sor.py``: ``sor_solve`` takes the sweep as one forward
substitution ``x ← x + (D/ω + L)⁻¹ r`` (``cupyx.scipy.linalg.solve_triangular`` on a GPU,
SciPy's on the host); red-black SOR relaxes each colour with one matrix-vector product and
one fused elementwise update. The stop rule reads one norm back per sweep.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def relax(x, b, ax, diagonal, omega):
        return x + omega * (b - ax) / diagonal

    if xp.__name__ == "cupy":
        from cupyx.scipy.linalg import solve_triangular
    else:
        from scipy.linalg import solve_triangular

    return SimpleNamespace(relax=relax, solve_triangular=solve_triangular)


kernels_for = kernel_set(_kernels)


def _finish(x, norms, iterations, converged, xp, dtype):
    return (x, xp.asarray(norms, dtype=dtype), xp.asarray(iterations, dtype=xp.int64), xp.asarray(converged))


def sor_solve_forward(A, b, x0, *, omega, tol=1e-8, max_iter=10_000):  # noqa: N803
    xp = xp_of(A)
    k = kernels_for(A)
    x = x0.copy()
    m = xp.diag(xp.diag(A)) / A.dtype.type(omega) + xp.tril(A, -1)
    r = b - A @ x
    norm = float(xp.sqrt(r @ r))
    norms = [norm]
    threshold = tol * norm
    converged = norm == 0
    iterations = 0
    while not converged and iterations < max_iter:
        x = x + k.solve_triangular(m, r, lower=True)
        r = b - A @ x
        norm = float(xp.sqrt(r @ r))
        norms.append(norm)
        iterations += 1
        converged = norm < threshold or norm == 0
    return _finish(x, norms, iterations, converged, xp, b.dtype), None


def sor_red_black_solve_forward(A, b, x0, red, *, omega, tol=1e-8, max_iter=10_000):  # noqa: N803
    xp = xp_of(A)
    k = kernels_for(A)
    x = x0.copy()
    diagonal = xp.diag(A)
    omega_value = A.dtype.type(omega)
    colours = [xp.flatnonzero(red), xp.flatnonzero(~red)]
    blocks = [(points, A[points], b[points], diagonal[points]) for points in colours]
    r = b - A @ x
    norm = float(xp.sqrt(r @ r))
    norms = [norm]
    threshold = tol * norm
    converged = norm == 0
    iterations = 0
    while not converged and iterations < max_iter:
        for points, rows, b_c, d_c in blocks:
            x[points] = k.relax(x[points], b_c, rows @ x, d_c, omega_value)
        r = b - A @ x
        norm = float(xp.sqrt(r @ r))
        norms.append(norm)
        iterations += 1
        converged = norm < threshold or norm == 0
    return _finish(x, norms, iterations, converged, xp, b.dtype), None


IMPLS = {
    "sor_solve": Impl(sor_solve_forward),
    "sor_red_black_solve": Impl(sor_red_black_solve_forward),
}
