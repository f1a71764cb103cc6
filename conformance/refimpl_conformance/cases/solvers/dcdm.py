"""Conformance cases for `dcdm_solve`, the Deep Conjugate Direction Method iteration."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register

NOTES = {
    "CG": "the identity model: the iterates are CG's and converge in at most n steps",
    "PCG": "a symmetric positive definite linear model f(r) = M r: preconditioned CG",
    "ZERO_RESIDUAL": "x0 already solves the system exactly: 0 iterations, no division by ‖r_0‖ = 0",
    "NO_ITERATIONS": "max_iter = 0: x0 comes back, not converged",
    "CAPPED": "max_iter below what convergence needs: the record says not converged",
    "WINDOW": "windows 1 and 3: with the identity model CG needs only the last direction",
    "SINGULAR": "a consistent singular (Neumann) system: the residual stays in the range of A",
    "FLOAT32": "float32 with a tolerance float32 can reach (the official code runs in float32)",
}

FLOAT64_ONLY = (
    "the default tolerance 1e-10 is below float32's resolution: a float32 run would iterate to "
    "max_iter on rounding noise (the random samples may fall back to the defaults)"
)


def identity(r):
    """The identity model: DCDM is then CG."""
    return r


def linear_model(matrix):
    """The model ``f(r) = M r`` for a fixed matrix (a stand-in for a trained network)."""

    def model(r):
        return matrix @ r

    return model


def spd_matrix(rng, n, condition=10.0):
    """A random symmetric positive definite (n, n) matrix with eigenvalues in [1, condition]."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.exp(rng.uniform(0, np.log(condition), size=n))
    a = (q * eigenvalues) @ q.T
    return (a + a.T) / 2


def _clear_of(norms, threshold, margin=100.0):
    """Whether the relative residuals stay a factor ``margin`` away from ``threshold`` up to the
    first one below it, so that rounding cannot move the stopping iteration."""
    ratios = norms / norms[0]
    for ratio in ratios:
        if ratio < threshold:
            return ratio < threshold / margin
        if ratio < threshold * margin:
            return False
    return True


def _robust(a, b, x0, model, thresholds):
    """Whether the run stops clear of each tolerance in ``thresholds`` (and runs at all)."""
    import refimpl

    for threshold in thresholds:
        try:
            _, norms, _, _ = refimpl.solvers.dcdm_solve(a, b, x0, model, tol=threshold)
        except refimpl.InputError:  # a direction without curvature: not a sample for the comparison
            return False
        if not _clear_of(norms, threshold):
            return False
    return True


def _random(rng, n):
    for _ in range(100):
        a = spd_matrix(rng, n, condition=float(rng.choice([3.0, 30.0, 300.0])))
        b = rng.standard_normal(n)
        x0 = rng.standard_normal(n) * float(rng.choice([0.0, 1.0]))
        kind = str(rng.choice(["identity", "jacobi", "spd"]))
        if kind == "identity":
            model = identity
        elif kind == "jacobi":
            model = linear_model(np.diag(1 / np.diag(a)))
        else:
            model = linear_model(spd_matrix(rng, n, condition=5.0))
        tol = float(rng.choice([1e-10, 1e-8, 1e-6]))
        if not _robust(a, b, x0, model, {tol, 1e-10}):
            continue
        kwargs = {
            "window": int(rng.choice([1, 2, 3])),
            "tol": tol,
            "max_iter": int(rng.choice([100, n, max(n - 1, 1), 2 * n])),
        }
        return Sample("random", (a, b, x0, model), kwargs, dtypes=("float64",), comment=FLOAT64_ONLY)
    raise RuntimeError("could not draw a system whose stopping iteration is clear of the tolerance")


def _float32_system():
    a = np.array([[4.0, 1.0, 0.0, 0.5], [1.0, 3.0, 0.5, 0.0], [0.0, 0.5, 2.0, 0.25], [0.5, 0.0, 0.25, 1.5]])
    return a, np.array([1.0, -2.0, 0.5, 3.0])


def _edges():
    rng = np.random.default_rng(41)
    a6 = spd_matrix(rng, 6, condition=50.0)
    b6 = rng.standard_normal(6)
    a32, b32 = _float32_system()
    neumann = 2 * np.eye(8) - np.eye(8, k=1) - np.eye(8, k=-1)
    neumann[0, 0] = neumann[-1, -1] = 1.0
    b_neumann = rng.standard_normal(8)
    b_neumann -= b_neumann.mean()  # consistent: orthogonal to the constant null space
    return [
        Sample(
            "documented example: CG in two steps",
            (np.array([[4.0, 1.0], [1.0, 3.0]]), np.array([1.0, 2.0]), np.zeros(2), identity),
            flags=("CG",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "identity model, n = 6",
            (a6, b6, np.zeros(6), identity),
            flags=("CG",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "Jacobi model: preconditioned CG",
            (a6, b6, np.zeros(6), linear_model(np.diag(1 / np.diag(a6)))),
            {"tol": 1e-8},
            flags=("PCG",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "window 1",
            (a6, b6, np.ones(6), identity),
            {"window": 1, "tol": 1e-8},
            flags=("WINDOW", "CG"),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "window 3",
            (a6, b6, np.ones(6), identity),
            {"window": 3, "tol": 1e-8},
            flags=("WINDOW", "CG"),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "x0 solves the system exactly",
            (np.diag([2.0, 4.0]), np.array([2.0, -4.0]), np.array([1.0, -1.0]), identity),
            flags=("ZERO_RESIDUAL",),
        ),
        Sample("max_iter = 0", (a32, b32, np.zeros(4), identity), {"max_iter": 0}, flags=("NO_ITERATIONS",)),
        Sample(
            "capped at 2 iterations",
            (a32, b32, np.zeros(4), identity),
            {"max_iter": 2, "tol": 1e-3},
            flags=("CAPPED", "FLOAT32"),
        ),
        Sample(
            "float32-reachable tolerance",
            (a32, b32, np.zeros(4), identity),
            {"tol": 1e-3},
            flags=("FLOAT32", "CG"),
        ),
        Sample(
            "float32, Jacobi model",
            (a32, b32, np.zeros(4), linear_model(np.diag(1 / np.diag(a32)))),
            {"tol": 1e-3, "window": 1},
            flags=("FLOAT32", "PCG"),
        ),
        Sample(
            "consistent singular Neumann system",
            (neumann, b_neumann, np.zeros(8), identity),
            {"tol": 1e-8},
            flags=("SINGULAR", "CG"),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample("1 × 1", (np.array([[2.5]]), np.array([5.0]), np.array([0.0]), identity), {"tol": 1e-3}),
    ]


def _errors():
    a, b = _float32_system()
    return [
        ErrorCase(
            "asymmetric A", (a + np.triu(np.ones((4, 4)), 1), b, np.zeros(4), identity), match="symmetric"
        ),
        ErrorCase("A = 0", (np.zeros((4, 4)), b, np.zeros(4), identity), match="nonzero"),
        ErrorCase(
            "the model returns zeros", (a, b, np.zeros(4), lambda r: np.zeros_like(r)), match="qᵀAq > 0"
        ),
        ErrorCase(
            "the model returns a null-space direction",
            (
                np.diag([1.0, 1.0, 0.0]),
                np.array([1.0, 1.0, 0.0]),
                np.zeros(3),
                lambda r: np.array([0.0, 0.0, 1.0]),
            ),
            match="null-space",
        ),
        ErrorCase("the model returns the wrong shape", (a, b, np.zeros(4), lambda r: r[:2]), match="shape"),
        ErrorCase("the model returns NaN", (a, b, np.zeros(4), lambda r: r * np.nan), match="finite"),
    ]


register(
    OpCases(
        "dcdm_solve",
        dims={"n": (1, 8)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        defaults={"window": 2, "tol": 1e-10, "max_iter": 100},
    )
)
