"""BO-REP's hypergradient on a quadratic bilevel problem, against the exact implicit gradient."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import borep_hypergradient, borep_linear_system_step


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


class QuadraticBilevel:
    """G(x, y) = ½yᵀAy − yᵀBx,  F(x, y) = ½‖y − c‖² + ½xᵀDx + eᵀx  (A, D SPD).

    ∇_y G = Ay − Bx, ∇²_yy G = A, ∇²_xy G = −Bᵀ; y*(x) = A⁻¹Bx;
    ∇_x F = Dx + e, ∇_y F = y − c;  ∇Φ(x) = Dx + e + BᵀA⁻¹(y*(x) − c).
    """

    def __init__(self, rng, dim_x, dim_y):
        q, _ = np.linalg.qr(rng.standard_normal((dim_y, dim_y)))
        self.A = (q * np.linspace(0.5, 3.0, dim_y)) @ q.T
        self.B = rng.standard_normal((dim_y, dim_x))
        self.D = np.diag(rng.uniform(0.1, 1.0, dim_x))
        self.c, self.e = rng.standard_normal(dim_y), rng.standard_normal(dim_x)

    def y_star(self, x):
        return np.linalg.solve(self.A, self.B @ x)

    def phi(self, x):
        y = self.y_star(x)
        return 0.5 * np.sum((y - self.c) ** 2) + 0.5 * x @ self.D @ x + self.e @ x

    def implicit_gradient(self, x):  # the dense solve: ∇_x F − ∇²_xy G (∇²_yy G)⁻¹ ∇_y F
        y = self.y_star(x)
        return self.D @ x + self.e + self.B.T @ np.linalg.solve(self.A, y - self.c)


def test_borep_hypergradient_known_value():
    np.testing.assert_array_equal(
        borep_hypergradient(np.array([1.0, 0.5]), np.array([0.25, -0.5])), [0.75, 1.0]
    )


def test_borep_hypergradient_at_the_exact_z_is_the_implicit_gradient():
    problem = QuadraticBilevel(np.random.default_rng(0), 3, 5)
    x = np.array([0.3, -1.2, 0.7])
    y = problem.y_star(x)
    z_star = np.linalg.solve(problem.A, y - problem.c)
    got = borep_hypergradient(problem.D @ x + problem.e, -problem.B.T @ z_star)
    np.testing.assert_allclose(got, problem.implicit_gradient(x), rtol=1e-12, atol=1e-12)
    # and that is the gradient of Φ(x) = F(x, y*(x)): central differences
    step = 1e-6
    numeric = [(problem.phi(x + step * d) - problem.phi(x - step * d)) / (2 * step) for d in np.eye(3)]
    np.testing.assert_allclose(got, numeric, rtol=0, atol=1e-7)


def test_borep_hypergradient_with_iterated_z_converges_to_the_implicit_gradient():
    problem = QuadraticBilevel(np.random.default_rng(1), 4, 6)
    x = np.array([1.0, -0.5, 0.25, 2.0])
    y = problem.y_star(x)
    grad_y_f, grad_x_f = y - problem.c, problem.D @ x + problem.e
    z = np.zeros(6)
    errors = []
    for _ in range(300):
        z = borep_linear_system_step(z, problem.A @ z, grad_y_f, nu=0.6)
        estimate = borep_hypergradient(grad_x_f, -problem.B.T @ z)
        errors.append(np.linalg.norm(estimate - problem.implicit_gradient(x)))
    assert errors[-1] < 1e-10
    assert errors[10] < 0.5 * errors[0]  # geometric: |1 − ν·λ| ≤ 0.7 in every eigendirection


def test_borep_hypergradient_matches_the_official_autograd_form():
    # the official code: −∇_x ⟨∇_y G(x, y), sg[z]⟩ with ∇_y G = Ay − Bx, i.e. −∂/∂x (zᵀ(Ay − Bx)) = Bᵀz;
    # transcribed by differentiating the scalar x ↦ −⟨Ay − Bx, z⟩ numerically at fixed y and z
    problem = QuadraticBilevel(np.random.default_rng(2), 2, 3)
    x, y, z = np.array([0.5, -1.0]), np.array([0.2, 0.1, -0.4]), np.array([1.0, -2.0, 0.5])

    def official_objective(xv):
        return -np.dot(problem.A @ y - problem.B @ xv, z)

    step = 1e-6
    official = np.array(
        [
            (official_objective(x + step * d) - official_objective(x - step * d)) / (2 * step)
            for d in np.eye(2)
        ]
    )
    # ∇_x F = 0 in the official hyperparameter task: the hypergradient is exactly this term
    got = borep_hypergradient(np.zeros(2), -problem.B.T @ z)
    np.testing.assert_allclose(got, official, rtol=0, atol=1e-8)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_borep_hypergradient_backends_agree(backend):
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        a, b = (rng.standard_normal((5, 3)).astype(dtype) for _ in range(2))
        got = _backend(backend).get("borep_hypergradient")(a, b)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, a - b)
