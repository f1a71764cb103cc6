"""Red-black SOR: a hand transcription on a grid, SOR in the reds-first ordering, the direct solution."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import sor_red_black_solve, sor_solve


def poisson_grid(side, shift):
    t = 2 * np.eye(side) - np.eye(side, k=1) - np.eye(side, k=-1)
    a = np.kron(np.eye(side), t) + np.kron(t, np.eye(side)) + shift * np.eye(side * side)
    rows, columns = np.divmod(np.arange(side * side), side)
    return a, (rows + columns) % 2 == 0


def stencil_sweeps(u, f, omega, shift, sweeps):
    """Red-black SOR on the 5-point stencil written on the grid itself (zero boundary)."""
    u = u.copy()
    side = u.shape[0]
    for _ in range(sweeps):
        for parity in (0, 1):  # red (r + c even) first
            new = u.copy()
            for r in range(side):
                for c in range(side):
                    if (r + c) % 2 != parity:
                        continue
                    neighbours = sum(
                        u[r + dr, c + dc]
                        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                        if 0 <= r + dr < side and 0 <= c + dc < side
                    )
                    gauss_seidel = (f[r, c] + neighbours) / (4 + shift)
                    new[r, c] = (1 - omega) * u[r, c] + omega * gauss_seidel
            u = new
    return u


@pytest.mark.parametrize("omega", [1.0, 1.6])
def test_red_black_matches_stencil_transcription(omega):
    rng = np.random.default_rng(3)
    a, red = poisson_grid(3, 0.2)
    f, u0 = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    x, _, iterations, _ = sor_red_black_solve(a, f.ravel(), u0.ravel(), red, omega=omega, max_iter=4)
    assert int(iterations) == 4
    np.testing.assert_allclose(x, stencil_sweeps(u0, f, omega, 0.2, 4).ravel(), rtol=1e-13, atol=1e-14)


def test_red_black_is_sor_in_reds_first_ordering():
    rng = np.random.default_rng(4)
    a, red = poisson_grid(4, 0.1)
    b, x0 = rng.standard_normal(16), rng.standard_normal(16)
    order = np.concatenate([np.flatnonzero(red), np.flatnonzero(~red)])
    x, norms, *_ = sor_red_black_solve(a, b, x0, red, omega=1.5, max_iter=5)
    x_sor, norms_sor, *_ = sor_solve(a[np.ix_(order, order)], b[order], x0[order], omega=1.5, max_iter=5)
    np.testing.assert_allclose(x[order], x_sor, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(norms, norms_sor, rtol=1e-10)
    x_natural, *_ = sor_solve(a, b, x0, omega=1.5, max_iter=5)
    assert np.abs(x_natural - x).max() > 1e-6  # a different ordering: different iterates


def test_red_black_matches_direct_solution():
    a, red = poisson_grid(5, 0.0)
    b = np.linspace(0.0, 1.0, 25)
    x, norms, iterations, converged = sor_red_black_solve(a, b, np.zeros(25), red, omega=1.5, tol=1e-12)
    assert bool(converged) and norms[-1] < 1e-12 * norms[0]
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-9, atol=1e-11)
    assert int(iterations) == len(norms) - 1


def test_red_black_refuses_coupling_within_a_colour():
    a, red = poisson_grid(3, 0.0)
    with pytest.raises(refimpl.InputError, match="two-colouring"):
        sor_red_black_solve(a, np.ones(9), np.zeros(9), ~red | (np.arange(9) == 0), omega=1.0)
