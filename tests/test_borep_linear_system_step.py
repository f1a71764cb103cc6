"""BO-REP's linear-system step: one gradient step on ½zᵀHz − zᵀb, converging to H⁻¹b."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import borep_linear_system_step


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


def _spd(rng, dim, low, high):
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    eigenvalues = np.linspace(low, high, dim)
    return (q * eigenvalues) @ q.T


def test_borep_linear_system_step_known_value():
    # H = diag(2, 0.5), z = [1, −2]: Hz = [2, −1]; b = [1, 1]; ν = 0.5
    z = borep_linear_system_step(np.array([1.0, -2.0]), np.array([2.0, -1.0]), np.array([1.0, 1.0]), nu=0.5)
    np.testing.assert_array_equal(z, [0.5, -1.0])


def test_borep_linear_system_step_is_a_gradient_step_on_the_quadratic():
    rng = np.random.default_rng(0)
    hessian, b, z = _spd(rng, 5, 0.5, 3.0), rng.standard_normal(5), rng.standard_normal(5)

    def quadratic(v):
        return 0.5 * v @ hessian @ v - v @ b

    nu = 0.3
    new_z = borep_linear_system_step(z, hessian @ z, b, nu=nu)
    # the step is −ν times the gradient of q, which central differences measure
    step = 1e-6
    gradient = np.array([(quadratic(z + step * e) - quadratic(z - step * e)) / (2 * step) for e in np.eye(5)])
    np.testing.assert_allclose(new_z, z - nu * gradient, rtol=0, atol=1e-8)


def test_borep_linear_system_step_fixed_point_does_not_move():
    rng = np.random.default_rng(1)
    hessian = _spd(rng, 4, 1.0, 2.0)
    z_star = rng.standard_normal(4)
    np.testing.assert_array_equal(
        borep_linear_system_step(z_star, hessian @ z_star, hessian @ z_star, nu=0.4), z_star
    )


def test_borep_linear_system_step_converges_to_the_dense_solution():
    rng = np.random.default_rng(2)
    hessian, b = _spd(rng, 8, 0.5, 4.0), rng.standard_normal(8)
    z_star = np.linalg.solve(hessian, b)
    z = np.zeros(8)
    nu = 1.9 / 4.0  # below 2/λ_max
    for _ in range(400):
        z = borep_linear_system_step(z, hessian @ z, b, nu=nu)
    np.testing.assert_allclose(z, z_star, rtol=0, atol=1e-10)


def test_borep_linear_system_step_contracts_by_one_minus_nu_lambda_per_eigendirection():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    eigenvalues = np.array([0.5, 1.0, 4.0])
    hessian, b = (q * eigenvalues) @ q.T, rng.standard_normal(3)
    z_star = np.linalg.solve(hessian, b)
    z = z_star + q[:, 2]  # the error along the top eigenvector
    nu = 0.6  # 2/λ_max = 0.5 < ν: that direction is amplified by |1 − 0.6·4| = 1.4
    new_z = borep_linear_system_step(z, hessian @ z, b, nu=nu)
    np.testing.assert_allclose(new_z - z_star, (1 - nu * 4.0) * q[:, 2], atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_borep_linear_system_step_backends_agree_in_float32(backend):
    rng = np.random.default_rng(4)
    args = tuple(rng.standard_normal((7, 9)).astype(np.float32) for _ in range(3))
    want = borep_linear_system_step(*args, nu=0.01)
    got = _backend(backend).get("borep_linear_system_step")(*args, nu=0.01)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_borep_linear_system_step_refuses_a_nonpositive_step():
    with pytest.raises(refimpl.InputError, match="nu"):
        borep_linear_system_step(np.ones(2), np.ones(2), np.ones(2), nu=0.0)
