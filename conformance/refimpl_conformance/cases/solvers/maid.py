"""Conformance cases for MAID's `maid_inexact_hypergradient` and `maid_backtracking_step`,
on quadratic and quartic lower-level problems with their oracles as callables."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

FLOAT64_ONLY = (
    "the accept/refine decisions are compared exactly: the float32-rounded inputs may move a test "
    "across its threshold"
)


class Bilevel:
    """h(x, θ) = ½xᵀHx − xᵀ(Cθ + d) + (κ/12)Σxᵢ⁴ (μ = λ_min(H)), g(x) = ½‖x − x_true‖²."""

    def __init__(self, h, c, d, x_true, kappa=0.0):
        self.h, self.c, self.d, self.x_true, self.kappa = h, c, d, x_true, kappa
        self.mu = float(np.linalg.eigvalsh(h)[0])

    def grad_lower(self, x, theta):
        return self.h @ x - self.c @ theta - self.d + self.kappa / 3 * x**3

    def hessian(self, x):
        return self.h + self.kappa * np.diag(x**2)

    def lower_solver(self, theta, x, epsilon):
        """Newton steps from the warm start until ‖∇ₓh‖ ≤ ε (at most 100)."""
        x = np.array(x, dtype=np.float64)
        for _ in range(100):
            gradient = self.grad_lower(x, theta)
            if np.linalg.norm(gradient) <= epsilon:
                break
            x = x - np.linalg.solve(self.hessian(x), gradient)
        return x

    def exact(self, theta):
        return self.lower_solver(theta, np.zeros(self.h.shape[0]), 1e-14)

    def upper(self, x):
        return 0.5 * float(np.sum((x - self.x_true) ** 2))

    def grad_upper(self, x):
        return x - self.x_true

    def hessian_vector(self, x, theta, v):
        return self.hessian(x) @ v

    def cross_vector(self, x, theta, q):  # (∂²_{θx}h)ᵀ q with ∂²_{θx}h = −C
        return -self.c.T @ q

    def cross_transpose_vector(self, x, theta, v):
        return -self.c @ v

    def oracles(self):
        return (
            self.lower_solver,
            self.grad_upper,
            self.hessian_vector,
            self.cross_vector,
            self.cross_transpose_vector,
        )

    def hypergradient(self, theta):
        """The exact ∇f(θ) = Cᵀ(∇²ₓₓh(x*))⁻¹∇g(x*)."""
        x_star = self.exact(theta)
        return self.c.T @ np.linalg.solve(self.hessian(x_star), self.grad_upper(x_star))


def random_bilevel(rng, n, p, kappa=0.0):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    h = (q * rng.uniform(0.5, 3.0, size=n)) @ q.T
    return Bilevel(
        (h + h.T) / 2, rng.standard_normal((n, p)), rng.standard_normal(n), rng.standard_normal(n), kappa
    )


HYPERGRADIENT_NOTES = {
    "QUADRATIC": "a quadratic lower level: L_B = L_A⁻¹ = 0 and ω = (B_x/μ)(ε + δ)",
    "QUARTIC": "a quartic term: the Hessian depends on x, so L_A⁻¹ > 0 from the perturbed CG",
    "REFINE": "loose ε, δ: the bound fails first and the accuracies shrink by τ",
    "CAPPED": "one evaluation allowed (R = 1) and the test fails: accepted = False",
    "RUNNING_MAX": "previous L_B, L_A⁻¹ larger than the new estimates: they are kept",
    "FLOAT32": "float32 inputs (computed in float64, cast back)",
}


def _hypergradient_sample(rng, n, p, name="random", **overrides):
    kappa = float(rng.choice([0.0, 0.5]))
    problem = random_bilevel(rng, n, p, kappa)
    theta = rng.standard_normal(p)
    x = problem.exact(theta) + 0.1 * rng.standard_normal(n)
    kwargs = {
        "epsilon": float(rng.choice([0.1, 1e-2, 1.0])),
        "delta": float(rng.choice([0.1, 1e-2, 1.0])),
        "mu": problem.mu,
        # the running maxima of the Lipschitz estimates a caller carries from earlier calls
        "lipschitz_b": float(rng.choice([0.0, 0.5])),
        "lipschitz_a_inv": float(rng.choice([0.0, 0.25])),
        "eta": float(rng.choice([1e-4, 1e-3])),
        "tau": float(rng.choice([0.5, 0.25])),
    }
    kwargs.update(overrides)
    return Sample(
        name,
        (theta, x, rng.standard_normal((6, 2, n)), *problem.oracles()),
        kwargs,
        flags=("QUARTIC",) if kappa else ("QUADRATIC",),
        dtypes=("float64",),
        comment=FLOAT64_ONLY,
    )


def _hypergradient_random(rng, n, p):
    return _hypergradient_sample(rng, n, p)


def _scalar_problem():
    """h = ½x² − θx (μ = 1, x* = θ), g = ½(x − 3)²: ∇f(θ) = θ − 3."""
    return Bilevel(np.eye(1), np.eye(1), np.zeros(1), np.array([3.0]))


def _hypergradient_edges():
    rng = np.random.default_rng(5)
    scalar = _scalar_problem()
    return [
        Sample(
            "documented example",
            (np.array([1.0]), np.array([0.0]), np.zeros((3, 2, 1)), *scalar.oracles()),
            {"epsilon": 0.1, "delta": 0.1, "mu": 1.0},
            flags=("QUADRATIC",),
        ),
        Sample(
            "loose accuracies refined",
            (np.array([2.9]), np.array([0.0]), np.zeros((8, 2, 1)), *scalar.oracles()),
            {"epsilon": 1.0, "delta": 1.0, "mu": 1.0},
            flags=("REFINE",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "one evaluation, rejected",
            (np.array([2.9]), np.array([0.0]), np.zeros((1, 2, 1)), *scalar.oracles()),
            {"epsilon": 1.0, "delta": 1.0, "mu": 1.0},
            flags=("CAPPED",),
        ),
        Sample(
            "running maxima kept",
            (np.array([1.0]), np.array([0.0]), np.zeros((3, 2, 1)), *scalar.oracles()),
            {"epsilon": 0.01, "delta": 0.01, "mu": 1.0, "lipschitz_b": 0.5, "lipschitz_a_inv": 0.25},
            flags=("RUNNING_MAX",),
        ),
        _hypergradient_sample(rng, 3, 2, name="quartic lower level", epsilon=0.05, delta=0.05),
        Sample(
            "float32",
            (
                np.array([1.0, -0.5], dtype=np.float32),
                np.zeros(2, dtype=np.float32),
                np.zeros((3, 2, 2)),
                *Bilevel(np.diag([1.0, 2.0]), np.eye(2), np.zeros(2), np.array([3.0, 1.0])).oracles(),
            ),
            {"epsilon": 0.01, "delta": 0.01, "mu": 1.0},
            flags=("FLOAT32",),
            dtypes=("float32",),
        ),
    ]


def _hypergradient_errors():
    scalar = _scalar_problem()
    oracles = list(scalar.oracles())
    wrong_shape = [lambda theta, x, eps: np.zeros(2), *oracles[1:]]
    indefinite = [*oracles[:2], lambda x, theta, d: -d, *oracles[3:]]
    base = (np.array([1.0]), np.array([0.0]), np.zeros((2, 2, 1)))
    kwargs = {"epsilon": 0.1, "delta": 0.1, "mu": 1.0}
    return [
        ErrorCase("solver returns the wrong shape", (*base, *wrong_shape), kwargs, match="shape"),
        ErrorCase("indefinite Hessian", (*base, *indefinite), kwargs, match="positive definite"),
    ]


def _hypergradient_known():
    scalar = _scalar_problem()
    return [
        Known(
            "scalar quadratic: ẑ = θ − 3, ω = |ẑ|(ε + δ)",
            (np.array([1.0]), np.array([0.0]), np.zeros((3, 2, 1)), *scalar.oracles()),
            {"epsilon": 0.1, "delta": 0.1, "mu": 1.0},
            values={"hypergradient": [-2.0], "error_bound": 0.4, "evaluations": 1, "accepted": True},
            source="by hand",
            rtol=1e-12,
        ),
    ]


register(
    OpCases(
        "maid_inexact_hypergradient",
        dims={"n": (1, 4), "p": (1, 3)},
        random=_hypergradient_random,
        edges=_hypergradient_edges,
        errors=_hypergradient_errors,
        known=_hypergradient_known,
        notes=HYPERGRADIENT_NOTES,
        defaults={"lipschitz_b": 0.0, "lipschitz_a_inv": 0.0, "eta": 1e-4, "tau": 0.5},
    )
)


# -- backtracking -------------------------------------------------------------------------------------
BACKTRACK_NOTES = {
    "FIRST_STEP": "the full step β is accepted at once",
    "SHRINK": "a step too long for the decrease test: ρ^i shrinks it",
    "FAIL": "no trial passes (an ascent direction): θ, x kept, ε and δ shrink by τ",
    "SLACK": "a large ε: the error terms alone fail the test",
}


def _backtracking_sample(rng, n, p, name="random"):
    problem = random_bilevel(rng, n, p, float(rng.choice([0.0, 0.5])))
    theta = rng.standard_normal(p)
    x = problem.exact(theta)
    z = problem.hypergradient(theta)
    kwargs = {
        "upper_value": problem.upper(x),
        "epsilon": float(rng.choice([1e-4, 1e-3])),
        "delta": float(rng.choice([1e-3, 1e-2])),
        "beta": float(rng.choice([0.1, 1.0, 10.0])),
        "lipschitz_g": float(rng.choice([1.0, 2.0])),
        "rho": float(rng.choice([0.9, 0.5])),
        "eta": float(rng.choice([1e-4, 1e-3])),
        "tau": float(rng.choice([0.5, 0.25])),
        "nu": float(rng.choice([1.05, 1.5])),
        "max_trials": int(rng.choice([10, 3])),
    }
    return Sample(
        name,
        (theta, x, z, problem.lower_solver, problem.upper, problem.grad_upper),
        kwargs,
        dtypes=("float64",),
        comment=FLOAT64_ONLY,
    )


def _backtracking_random(rng, n, p):
    return _backtracking_sample(rng, n, p)


def _backtracking_edges():
    scalar = _scalar_problem()
    args = (np.array([1.0]), np.array([1.0]))
    oracles = (scalar.lower_solver, scalar.upper, scalar.grad_upper)
    base = {"upper_value": 2.0, "epsilon": 1e-3, "delta": 1e-3, "lipschitz_g": 1.0}
    return [
        Sample(
            "full step", (*args, np.array([-2.0]), *oracles), {**base, "beta": 0.1}, flags=("FIRST_STEP",)
        ),
        Sample(
            "step shrunk",
            (*args, np.array([-2.0]), *oracles),
            {**base, "beta": 2.0},
            flags=("SHRINK",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "ascent direction fails",
            (*args, np.array([2.0]), *oracles),
            {**base, "beta": 0.1},
            flags=("FAIL",),
        ),
        Sample(
            "ε too large",
            (*args, np.array([-2.0]), *oracles),
            {**base, "beta": 0.1, "epsilon": 1.0},
            flags=("SLACK", "FAIL"),
        ),
    ]


def _backtracking_errors():
    scalar = _scalar_problem()
    args = (np.array([1.0]), np.array([1.0]), np.array([-2.0]), scalar.lower_solver)
    kwargs = {"upper_value": 2.0, "epsilon": 1e-3, "delta": 1e-3, "beta": 0.1, "lipschitz_g": 1.0}
    return [
        ErrorCase(
            "upper objective NaN", (*args, lambda x: float("nan"), scalar.grad_upper), kwargs, match="finite"
        ),
    ]


def _backtracking_known():
    scalar = _scalar_problem()
    oracles = (scalar.lower_solver, scalar.upper, scalar.grad_upper)
    base = {"upper_value": 2.0, "epsilon": 1e-3, "delta": 1e-3, "lipschitz_g": 1.0}
    return [
        Known(
            "β = 0.1: θ = 1.2, g = 1.62, β ← 0.1·10/9",
            (np.array([1.0]), np.array([1.0]), np.array([-2.0]), *oracles),
            {**base, "beta": 0.1},
            values={
                "theta": [1.2],
                "upper_value": 1.62,
                "trials": 1,
                "accepted": True,
                "beta": 1 / 9,
                "epsilon": 1.05e-3,
            },
            source="by hand",
            rtol=1e-12,
        ),
        Known(
            "β = 2: θ = 5 fails (g = 2), β·0.9 = 1.8 gives θ = 4.6, g = 1.28",
            (np.array([1.0]), np.array([1.0]), np.array([-2.0]), *oracles),
            {**base, "beta": 2.0},
            values={"theta": [4.6], "upper_value": 1.28, "trials": 2, "step_size": 1.8},
            source="by hand",
            rtol=1e-12,
        ),
    ]


register(
    OpCases(
        "maid_backtracking_step",
        dims={"n": (1, 4), "p": (1, 3)},
        random=_backtracking_random,
        edges=_backtracking_edges,
        errors=_backtracking_errors,
        known=_backtracking_known,
        notes=BACKTRACK_NOTES,
        defaults={"rho": 0.9, "eta": 1e-4, "tau": 0.5, "nu": 1.05, "max_trials": 10},
    )
)
