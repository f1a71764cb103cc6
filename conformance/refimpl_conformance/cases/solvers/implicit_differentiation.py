"""Conformance cases for implicit differentiation: `implicit_root_vjp`, `implicit_root_jvp` and
`implicit_fixed_point_vjp`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register

NOTES = {
    "RIDGE": "ridge regression F(x, λ) = (AᵀA + λI)x − Aᵀy: dx*/dλ = −(AᵀA + λI)⁻¹x* in closed form",
    "LASSO": "the lasso's proximal-gradient map: ∂₁T has zero rows off the support (the prox's "
    "derivative), ∂T/∂λ = −η·sign on the support",
    "NONSYMMETRIC": "a nonsymmetric ∂₁F (a root of a non-gradient map): the VJP solves with the "
    "transpose, the JVP with the matrix itself — swapping them is caught",
    "SCALAR_THETA": "one hyperparameter: ∂₂F is a single column",
    "ILL_CONDITIONED": "cond(∂₁F) = 1e4: the rounding of the solve is amplified",
    "CONTRACTION": "a contraction T (‖∂₁T‖ < 1): the fixed-point iteration converges",
    "EXPANSIVE": "‖∂₁T‖ > 1 with I − ∂₁T invertible: no iteration converges, the rule still holds",
}


def nonsymmetric_jacobian(rng, n, condition=10.0):
    """A random nonsymmetric (n, n) matrix with singular values in [1, condition]."""
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (u * np.exp(rng.uniform(0, np.log(condition), size=n))) @ v.T


def ridge(rng, m, n, lam):
    """Ridge regression's optimality condition at its solution: (∂₁F, ∂F/∂λ, x*)."""
    a = rng.standard_normal((m, n))
    y = rng.standard_normal(m)
    hessian = a.T @ a + lam * np.eye(n)
    x_star = np.linalg.solve(hessian, a.T @ y)
    return hessian, x_star[:, None], x_star


def lasso_fixed_point(rng, m, n, lam, eta):
    """The lasso's proximal-gradient map T(x, λ) = S_{ηλ}(x − ηAᵀ(Ax − y)) at its fixed point,
    found by running T to convergence: (∂₁T, ∂T/∂λ, x*)."""
    a = rng.standard_normal((m, n)) / np.sqrt(m)
    y = a @ (rng.standard_normal(n) * (rng.uniform(size=n) < 0.5)) + 0.1 * rng.standard_normal(m)
    x = np.zeros(n)
    for _ in range(20000):
        z = x - eta * a.T @ (a @ x - y)
        x_next = np.sign(z) * np.maximum(np.abs(z) - eta * lam, 0)
        if np.max(np.abs(x_next - x)) < 1e-15:
            break
        x = x_next
    z = x - eta * a.T @ (a @ x - y)
    support = (np.abs(z) > eta * lam).astype(float)
    jac_x = support[:, None] * (np.eye(n) - eta * a.T @ a)
    jac_lam = (-eta * np.sign(z) * support)[:, None]
    return jac_x, jac_lam, x


# -- implicit_root_vjp and implicit_root_jvp -------------------------------------------------------
def _root_matrices(rng, n, p):
    if rng.integers(0, 2):
        jac_x = nonsymmetric_jacobian(rng, n, condition=float(rng.choice([2.0, 30.0])))
    else:
        jac_x, _, _ = ridge(rng, n + 3, n, float(rng.choice([0.1, 1.0])))
    jac_theta = rng.standard_normal((n, p)) * float(rng.choice([0.1, 1.0, 10.0]))
    return jac_x, jac_theta


def _root_vjp_random(rng, n, p):
    jac_x, jac_theta = _root_matrices(rng, n, p)
    return Sample("random", (jac_x, jac_theta, rng.standard_normal(n)))


def _root_jvp_random(rng, n, p):
    jac_x, jac_theta = _root_matrices(rng, n, p)
    return Sample("random", (jac_x, jac_theta, rng.standard_normal(p)))


def _root_edges(third):
    def edges():
        rng = np.random.default_rng(51)
        hessian, jac_lam, _ = ridge(rng, 8, 5, 0.5)
        nonsymmetric = nonsymmetric_jacobian(rng, 4, condition=5.0)
        ill = nonsymmetric_jacobian(rng, 5, condition=1e4)
        return [
            Sample(
                "ridge: ∂F/∂λ = x*", (hessian, jac_lam, third(rng, 5, 1)), flags=("RIDGE", "SCALAR_THETA")
            ),
            Sample(
                "nonsymmetric ∂₁F",
                (nonsymmetric, rng.standard_normal((4, 3)), third(rng, 4, 3)),
                flags=("NONSYMMETRIC",),
            ),
            Sample(
                "ill-conditioned ∂₁F",
                (ill, rng.standard_normal((5, 2)), third(rng, 5, 2)),
                flags=("ILL_CONDITIONED",),
                fd_step=1e-7,
                fd_rtol=1e-5,
            ),
            Sample(
                "1 × 1",
                (np.array([[-2.0]]), np.array([[3.0, 1.0]]), third(rng, 1, 2)),
                flags=("SCALAR_THETA",),
            ),
        ]

    return edges


def _root_errors(third):
    def errors():
        singular = np.array([[1.0, 2.0], [2.0, 4.0]])
        return [
            ErrorCase("singular ∂₁F", (singular, np.ones((2, 1)), third), match="invertible"),
            ErrorCase("∂₁F = 0", (np.zeros((2, 2)), np.ones((2, 1)), third), match="invertible"),
        ]

    return errors


register(
    OpCases(
        "implicit_root_vjp",
        dims={"n": (1, 6), "p": (1, 4)},
        random=_root_vjp_random,
        edges=_root_edges(lambda rng, n, p: rng.standard_normal(n)),
        errors=_root_errors(np.array([1.0, -1.0])),
        notes=NOTES,
        defaults={},
    )
)

register(
    OpCases(
        "implicit_root_jvp",
        dims={"n": (1, 6), "p": (1, 4)},
        random=_root_jvp_random,
        edges=_root_edges(lambda rng, n, p: rng.standard_normal(p)),
        errors=_root_errors(np.array([1.0])),
        notes=NOTES,
        defaults={},
    )
)


# -- implicit_fixed_point_vjp ----------------------------------------------------------------------
def _fixed_point_random(rng, n, p):
    jac_x = nonsymmetric_jacobian(rng, n, condition=3.0)
    jac_x *= float(rng.uniform(0.2, 0.9)) / np.linalg.norm(jac_x, 2)  # a contraction
    jac_theta = rng.standard_normal((n, p)) * float(rng.choice([0.1, 1.0, 10.0]))
    return Sample("random", (jac_x, jac_theta, rng.standard_normal(n)), flags=("CONTRACTION",))


def _fixed_point_edges():
    rng = np.random.default_rng(52)
    jac_x, jac_lam, _ = lasso_fixed_point(rng, 12, 6, lam=0.05, eta=0.5)
    expansive = nonsymmetric_jacobian(rng, 4, condition=2.0) * 3.0
    return [
        Sample(
            "lasso prox-gradient map",
            (jac_x, jac_lam, rng.standard_normal(6)),
            flags=("LASSO", "SCALAR_THETA"),
        ),
        Sample(
            "expansive ∂₁T",
            (expansive, rng.standard_normal((4, 2)), rng.standard_normal(4)),
            flags=("EXPANSIVE",),
        ),
        Sample("∂₁T = 0: θ̄ = ∂₂Tᵀx̄", (np.zeros((3, 3)), rng.standard_normal((3, 2)), rng.standard_normal(3))),
        Sample("1 × 1", (np.array([[0.5]]), np.array([[1.0]]), np.array([2.0])), flags=("SCALAR_THETA",)),
    ]


def _fixed_point_errors():
    return [
        ErrorCase("∂₁T = I", (np.eye(2), np.ones((2, 1)), np.ones(2)), match="I − ∂₁T"),
        ErrorCase(
            "∂₁T with eigenvalue 1",
            (np.array([[1.0, 0.0], [0.0, 0.5]]), np.ones((2, 1)), np.ones(2)),
            match="invertible",
        ),
    ]


register(
    OpCases(
        "implicit_fixed_point_vjp",
        dims={"n": (1, 6), "p": (1, 4)},
        random=_fixed_point_random,
        edges=_fixed_point_edges,
        errors=_fixed_point_errors,
        notes=NOTES,
        defaults={},
    )
)
