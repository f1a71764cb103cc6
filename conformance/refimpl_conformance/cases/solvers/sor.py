"""Conformance cases for `sor_solve`, `sor_red_black_solve` and `omega_bandit_step` (Learning to Relax)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register
from .dcdm import spd_matrix

NOTES = {
    "GAUSS_SEIDEL": "ω = 1: the sweep is Gauss–Seidel",
    "OVER_RELAXED": "ω near 2 (1.95, the official grid's top): slow, oscillating convergence",
    "UNDER_RELAXED": "ω < 1: damped sweeps",
    "ZERO_RESIDUAL": "x0 already solves the system: 0 iterations, no division by ‖r_0‖ = 0",
    "NO_ITERATIONS": "max_iter = 0: x0 comes back, not converged",
    "CAPPED": "max_iter below what convergence needs: the record says not converged",
    "POISSON": "the 1-D / 2-D Poisson matrix (the paper's systems), shifted as in the scripts",
    "FLOAT32": "float32 with a tolerance float32 can reach",
    "ONE_COLOUR": "red-black with every point red: one Jacobi-like colour (A diagonal)",
    "UNIFORM_FALLBACK": "bandit scale 0 (every loss 1, K = 0): K/s = 0/0, the uniform fallback plays",
    "FIRST_ROUND": "bandit round 1: K = 0, no history, uniform play",
}

FLOAT64_ONLY = (
    "the default tolerance 1e-8 is near float32's resolution: a float32 run would sweep to max_iter"
)


def poisson_1d(n, shift=0.0):
    """The (n, n) 1-D Poisson matrix tridiag(−1, 2, −1) + shift·I."""
    return (2.0 + shift) * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)


def poisson_2d(side, shift=0.0):
    """The 5-point 2-D Poisson matrix on a side × side grid (row-major points) + shift·I, and
    the checkerboard colouring (red where row + column is even)."""
    t = poisson_1d(side)
    a = np.kron(np.eye(side), t) + np.kron(t, np.eye(side)) + shift * np.eye(side * side)
    rows, columns = np.divmod(np.arange(side * side), side)
    return a, (rows + columns) % 2 == 0


def _clear_of(norms, threshold, margin=1.01):
    """Whether no relative residual lies within a factor ``margin`` of ``threshold``: SOR
    converges linearly, so rounding (relative error ~1e-5 at ratio 1e-10) could otherwise
    move the stopping sweep by one."""
    ratios = norms / norms[0]
    return not np.any((ratios > threshold / margin) & (ratios < threshold * margin))


def _robust(solve, a, b, x0, omega, thresholds, extra=()):
    for threshold in thresholds:
        _, norms, _, converged = solve(a, b, x0, *extra, omega=omega, tol=threshold, max_iter=2000)
        if not bool(converged) or not _clear_of(norms, threshold):
            return False
    return True


def _system(rng, n):
    a = spd_matrix(rng, n, condition=float(rng.choice([2.0, 10.0, 30.0])))
    return a, rng.standard_normal(n), rng.standard_normal(n) * float(rng.choice([0.0, 1.0]))


def _random_sor(rng, n):
    import refimpl

    for _ in range(100):
        a, b, x0 = _system(rng, n)
        omega = float(rng.uniform(0.6, 1.8))
        tol = float(rng.choice([1e-10, 1e-8, 1e-6]))
        if not _robust(refimpl.solvers.sor_solve, a, b, x0, omega, {tol, 1e-8}):
            continue
        kwargs = {"omega": omega, "tol": tol, "max_iter": 2000}
        return Sample("random", (a, b, x0), kwargs, dtypes=("float64",), comment=FLOAT64_ONLY)
    raise RuntimeError("could not draw a system whose stopping iteration is clear of the tolerance")


def _random_red_black(rng, side_a, side_b):
    import refimpl

    for _ in range(100):
        a, red = poisson_2d(1, 0.0) if side_a * side_b == 1 else _grid(rng, side_a, side_b)
        n = a.shape[0]
        b, x0 = rng.standard_normal(n), rng.standard_normal(n) * float(rng.choice([0.0, 1.0]))
        omega = float(rng.uniform(0.6, 1.8))
        tol = float(rng.choice([1e-10, 1e-8, 1e-6]))
        if not _robust(refimpl.solvers.sor_red_black_solve, a, b, x0, omega, {tol, 1e-8}, (red,)):
            continue
        kwargs = {"omega": omega, "tol": tol, "max_iter": 2000}
        return Sample("random", (a, b, x0, red), kwargs, dtypes=("float64",), comment=FLOAT64_ONLY)
    raise RuntimeError("could not draw a system whose stopping iteration is clear of the tolerance")


def _grid(rng, side_a, side_b):
    """A side_a × side_b 5-point stencil with random positive couplings, diagonally dominant."""
    n = side_a * side_b
    a = np.zeros((n, n))
    for r in range(side_a):
        for c in range(side_b):
            i = r * side_b + c
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < side_a and c + dc < side_b:
                    j = (r + dr) * side_b + c + dc
                    a[i, j] = a[j, i] = -rng.uniform(0.5, 1.5)
    a[np.diag_indices(n)] = np.abs(a).sum(axis=1) + rng.uniform(0.1, 1.0, size=n)
    rows, columns = np.divmod(np.arange(n), side_b)
    return a, (rows + columns) % 2 == 0


def _shared_edges(extra):
    """Edges of both solves; ``extra(a)`` gives the colouring argument (none for ``sor_solve``)."""
    p6 = poisson_1d(6, 0.1)
    b6 = np.array([1.0, -2.0, 0.5, 3.0, 0.0, 1.0])
    p1, b1 = poisson_1d(4), np.ones(4)
    return [
        Sample(
            "1-D Poisson, Gauss–Seidel",
            (p6, b6, np.zeros(6), *extra(p6)),
            {"omega": 1.0},
            flags=("GAUSS_SEIDEL", "POISSON"),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "1-D Poisson, ω = 1.95",
            (p6, b6, np.zeros(6), *extra(p6)),
            {"omega": 1.95},
            flags=("OVER_RELAXED", "POISSON"),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "ω = 0.5",
            (p6, b6, np.ones(6), *extra(p6)),
            {"omega": 0.5, "tol": 1e-6},
            flags=("UNDER_RELAXED",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "x0 solves the system",
            (p1, p1 @ np.arange(4.0), np.arange(4.0), *extra(p1)),
            # the cap bounds the accuracy model's perturbed runs, whose rounding makes the
            # starting residual ~1e-16 (tol is relative to it); the clean run stops at once
            {"omega": 1.3, "max_iter": 50},
            flags=("ZERO_RESIDUAL",),
        ),
        Sample(
            "max_iter = 0",
            (p1, b1, np.zeros(4), *extra(p1)),
            {"omega": 1.3, "max_iter": 0},
            flags=("NO_ITERATIONS",),
        ),
        Sample(
            "capped at 3 sweeps",
            (p1, b1, np.zeros(4), *extra(p1)),
            {"omega": 1.3, "max_iter": 3, "tol": 1e-3},
            flags=("CAPPED", "FLOAT32"),
        ),
        Sample(
            "float32-reachable tolerance",
            (p6, b6, np.zeros(6), *extra(p6)),
            {"omega": 1.2, "tol": 1e-4},
            flags=("FLOAT32",),
        ),
        Sample(
            "1 × 1",
            (np.array([[2.5]]), np.array([5.0]), np.array([0.0]), *extra(np.eye(1))),
            {"omega": 0.8, "tol": 1e-4},
        ),
    ]


def _sor_edges():
    return _shared_edges(lambda a: ())


def _checkerboard(a):
    return ((np.arange(a.shape[0]) % 2 == 0),)


def _red_black_edges():
    a, red = poisson_2d(4, 0.1)
    b = np.linspace(-1.0, 1.0, 16)
    return [
        *_shared_edges(_checkerboard),
        Sample(
            "2-D Poisson 4 × 4, checkerboard",
            (a, b, np.zeros(16), red),
            {"omega": 1.5},
            flags=("POISSON",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "every point red, A diagonal",
            (np.diag([2.0, 4.0, 5.0]), np.ones(3), np.zeros(3), np.ones(3, dtype=bool)),
            {"omega": 1.0, "tol": 1e-4},
            flags=("ONE_COLOUR",),
        ),
    ]


def _sor_errors():
    return [
        ErrorCase(
            "a_ii = 0",
            (np.array([[0.0, 1.0], [1.0, 2.0]]), np.ones(2), np.zeros(2)),
            {"omega": 1.0},
            match="nonzero diagonal",
        )
    ]


def _red_black_errors():
    return [
        ErrorCase(
            "a_ii = 0",
            (np.array([[0.0, 1.0], [1.0, 2.0]]), np.ones(2), np.zeros(2), np.array([True, False])),
            {"omega": 1.0},
            match="nonzero diagonal",
        ),
        ErrorCase(
            "two neighbours of one colour",
            (poisson_1d(3), np.ones(3), np.zeros(3), np.array([True, True, False])),
            {"omega": 1.0},
            match="two-colouring",
        ),
    ]


def _bench_sor(rng, rows, cols):
    # n = 400, shifted as the official scripts' A + c·I; tol 1e-5: reachable in float32
    a, _ = poisson_2d(20, 0.1)
    return Sample("bench", (a, rng.standard_normal(400), np.zeros(400)), {"omega": 1.7, "tol": 1e-5})


def _bench_red_black(rng, rows, cols):
    a, red = poisson_2d(20, 0.1)
    return Sample("bench", (a, rng.standard_normal(400), np.zeros(400), red), {"omega": 1.7, "tol": 1e-5})


def _torch_record(torch, step_once, a, b, x, tol, max_iter):
    r = b - a @ x
    norms = [torch.linalg.vector_norm(r)]
    threshold = tol * norms[0]
    converged = bool(norms[0] == 0)
    iterations = 0
    while not converged and iterations < max_iter:
        x = step_once(x, r)
        r = b - a @ x
        norms.append(torch.linalg.vector_norm(r))
        iterations += 1
        converged = bool(norms[-1] < threshold or norms[-1] == 0)
    return x, torch.stack(norms), torch.tensor(iterations), torch.tensor(converged)


def _sor_torch(torch, args, kwargs, cotangent):
    a, b, x0 = (torch.as_tensor(v) for v in args)
    omega, tol, max_iter = kwargs["omega"], kwargs.get("tol", 1e-8), kwargs.get("max_iter", 10_000)
    m = torch.diag(torch.diagonal(a)) / omega + torch.tril(a, -1)

    def sweep(x, r):
        return x + torch.linalg.solve_triangular(m, r[:, None], upper=False)[:, 0]

    return lambda: _torch_record(torch, sweep, a, b, x0.clone(), tol, max_iter)


def _red_black_torch(torch, args, kwargs, cotangent):
    a, b, x0 = (torch.as_tensor(v) for v in args[:3])
    red = torch.as_tensor(args[3])
    omega, tol, max_iter = kwargs["omega"], kwargs.get("tol", 1e-8), kwargs.get("max_iter", 10_000)
    diagonal = torch.diagonal(a)
    colours = [torch.nonzero(red)[:, 0], torch.nonzero(~red)[:, 0]]

    def sweep(x, r):
        x = x.clone()
        for points in colours:
            x[points] = x[points] + omega * (b[points] - a[points] @ x) / diagonal[points]
        return x

    return lambda: _torch_record(torch, sweep, a, b, x0.clone(), tol, max_iter)


def _sor_known():
    a, b = np.array([[2.0, -1.0], [-1.0, 2.0]]), np.array([1.0, 0.0])
    return [
        Known(
            "one Gauss–Seidel sweep",
            (a, b, np.zeros(2)),
            {"omega": 1.0, "max_iter": 1},
            {"x": [0.5, 0.25], "residual_norms": [1.0, 0.25]},
            source="by hand: x_1 = 1/2, x_2 = x_1/2",
        ),
        Known(
            "one SOR sweep, ω = 1.5",
            (a, b, np.zeros(2)),
            {"omega": 1.5, "max_iter": 1},
            {"x": [0.75, 0.5625]},
            source="by hand: x_1 = 1.5·1/2, x_2 = 1.5·x_1/2",
        ),
    ]


def _red_black_known():
    a, b = poisson_1d(3), np.array([1.0, 1.0, 1.0])
    return [
        Known(
            "one red-black sweep, 1-D Poisson n = 3",
            (a, b, np.zeros(3), np.array([True, False, True])),
            {"omega": 1.0, "max_iter": 1},
            {"x": [0.5, 1.0, 0.5]},
            source="by hand: reds x_1 = x_3 = 1/2, then black x_2 = (1 + 1/2 + 1/2)/2",
        ),
    ]


register(
    OpCases(
        "sor_solve",
        dims={"n": (1, 8)},
        random=_random_sor,
        edges=_sor_edges,
        errors=_sor_errors,
        notes=NOTES,
        known=_sor_known,
        defaults={"tol": 1e-8, "max_iter": 10_000},
        bench=Bench(
            make=_bench_sor,
            kwargs={"omega": 1.7, "tol": 1e-5},
            torch=_sor_torch,
            torch_label="official matrix form: x ← x + (D/ω + L)⁻¹ r (torch.linalg.solve_triangular)",
        ),
    )
)

register(
    OpCases(
        "sor_red_black_solve",
        dims={"side_a": (1, 3), "side_b": (1, 3)},
        random=_random_red_black,
        edges=_red_black_edges,
        errors=_red_black_errors,
        notes=NOTES,
        known=_red_black_known,
        defaults={"tol": 1e-8, "max_iter": 10_000},
        bench=Bench(
            make=_bench_red_black,
            kwargs={"omega": 1.7, "tol": 1e-5},
            torch=_red_black_torch,
            torch_label="per colour: x_c ← x_c + ω (b_c − A_c x)/a_cc (index_put, matvec)",
        ),
    )
)


# ---------------------------------------------------------------- omega_bandit_step


def quadratic_cost(best, curvature=40.0, floor=2.0):
    """A synthetic cost curve ``ℓ(ω) = floor + curvature·(ω − best)²`` (iterations-like)."""

    def cost(omega):
        return floor + curvature * (float(omega) - best) ** 2

    return cost


def _random_bandit(rng, d, m):
    grid = np.linspace(1.0, 1.95, d)
    k = rng.uniform(0.0, 20.0, size=d) * float(m > 0)
    losses = rng.uniform(1.5, 6.0, size=m)
    return Sample(
        "random", (grid, k, losses, float(rng.uniform(0, 1)), quadratic_cost(float(rng.uniform(1, 1.95))))
    )


def _bandit_edges():
    grid = np.linspace(1.0, 1.95, 20)
    return [
        Sample(
            "first round", (grid, np.zeros(20), np.zeros(0), 0.5, quadratic_cost(1.8)), flags=("FIRST_ROUND",)
        ),
        Sample(
            "scale 0: uniform fallback",
            (grid, np.zeros(20), np.ones(3), 0.31, quadratic_cost(1.8)),
            flags=("UNIFORM_FALLBACK",),
        ),
        Sample(
            "one arm", (np.array([1.5]), np.array([3.0]), np.array([2.0, 4.0]), 0.99, quadratic_cost(1.5))
        ),
        Sample(
            "u = 0",
            (grid[:4], np.array([0.0, 5.0, 10.0, 2.0]), np.array([3.0, 2.5]), 0.0, quadratic_cost(1.2)),
        ),
    ]


def _bandit_errors():
    grid = np.linspace(1.0, 1.95, 3)
    return [
        ErrorCase(
            "cost returns NaN",
            (grid, np.zeros(3), np.zeros(0), 0.5, lambda omega: float("nan")),
            match="finite",
        ),
        ErrorCase(
            "cost returns a string", (grid, np.zeros(3), np.zeros(0), 0.5, lambda omega: "x"), match="real"
        ),
    ]


def _bandit_known():
    return [
        Known(
            "round 1, two arms",
            (np.array([1.0, 1.5]), np.zeros(2), np.zeros(0), 0.75, lambda omega: 3.0),
            {},
            {"index": 1, "probabilities": [0.5, 0.5], "K_next": [0.0, 4.0], "losses_next": [3.0]},
            source="by hand: K = 0: p = 1/2 each, u = 0.75 picks arm 2; K_2 += (3 − 1)/0.5",
        ),
    ]


register(
    OpCases(
        "omega_bandit_step",
        dims={"d": (1, 8), "m": (0, 5)},
        random=_random_bandit,
        edges=_bandit_edges,
        errors=_bandit_errors,
        notes=NOTES,
        known=_bandit_known,
        defaults={},
    )
)
