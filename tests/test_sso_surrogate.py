"""SSO's target-space surrogate: anchor identities, majorization, paper/code equivalence, official formula."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import sso_surrogate


@pytest.fixture
def anchor():
    rng = np.random.default_rng(134)
    z_t = rng.standard_normal((6, 4))
    return rng, z_t, rng.standard_normal((6, 4))


def _grad(z, z_t, grad_t, **kwargs):
    _, pullback = refimpl.vjp(sso_surrogate, z, z_t, grad_t, **kwargs)
    return pullback(np.array(1.0))[0]


def test_sso_surrogate_known_values():
    z, z_t, grad_t = np.array([[1.0, 2.0]]), np.zeros((1, 2)), np.ones((1, 2))
    # paper: 1 + ⟨1, [1, 2]⟩ + (1 + 4)/(2·0.5) = 1 + 3 + 5
    assert float(sso_surrogate(z, z_t, grad_t, eta=0.5, loss_t=1.0)) == 9.0
    np.testing.assert_array_equal(_grad(z, z_t, grad_t, eta=0.5), [[3.0, 5.0]])  # 1 + d/η
    # code (η_c = 0.5): mean(1/0.5 + 1, 2/0.5 + 4) = 5.5; ∇ = (1/η_c + 2d)/2
    assert float(sso_surrogate(z, z_t, grad_t, eta=0.5, form="code")) == 5.5
    np.testing.assert_array_equal(_grad(z, z_t, grad_t, eta=0.5, form="code"), [[2.0, 3.0]])


def test_sso_surrogate_equals_loss_and_gradient_at_anchor(anchor):
    _, z_t, grad_t = anchor
    value = sso_surrogate(z_t.copy(), z_t, grad_t, eta=0.7, loss_t=3.25)
    assert float(value) == 3.25  # g_t(z_t) = ℓ(z_t)
    np.testing.assert_array_equal(_grad(z_t.copy(), z_t, grad_t, eta=0.7), grad_t)  # ∇g_t(z_t) = ∇ℓ(z_t)


def test_sso_surrogate_majorizes_a_smooth_loss_and_gap_is_exact(anchor):
    # ℓ(z) = Σ log(1 + e^z) is (1/4)-smooth: with η ≤ 4, g_t ≥ ℓ everywhere
    rng, z_t, _ = anchor

    def loss(z):
        return np.logaddexp(0.0, z).sum()

    grad_t = 1 / (1 + np.exp(-z_t))
    for _ in range(50):
        z = z_t + rng.standard_normal(z_t.shape) * 3
        assert sso_surrogate(z, z_t, grad_t, eta=4.0, loss_t=loss(z_t)) >= loss(z) - 1e-12
    # ℓ(z) = (a/2)‖z‖² (a-smooth): g_t − ℓ = (1/(2η) − a/2)‖z − z_t‖², negative once η > 1/a
    a = 2.0
    z = z_t + rng.standard_normal(z_t.shape)
    gap = np.sum((z - z_t) ** 2)
    for eta, sign in ((0.25, 1), (0.5, 0), (1.0, -1)):
        value = sso_surrogate(z, z_t, a * z_t, eta=eta, loss_t=a / 2 * np.sum(z_t**2))
        np.testing.assert_allclose(value - a / 2 * np.sum(z**2), (1 / (2 * eta) - a / 2) * gap, atol=1e-12)
        assert np.sign(round(float(value - a / 2 * np.sum(z**2)), 9)) == sign


def test_sso_surrogate_is_a_proximal_step_to_the_target_space_sgd_point(anchor):
    # g_t(z) = const + (1/(2η))‖z − (z_t − η∇ℓ)‖²: differences between two points match
    rng, z_t, grad_t = anchor
    eta = 0.3
    z_half = z_t - eta * grad_t
    z1, z2 = (z_t + rng.standard_normal(z_t.shape) for _ in range(2))
    difference = sso_surrogate(z1, z_t, grad_t, eta=eta) - sso_surrogate(z2, z_t, grad_t, eta=eta)
    expected = (np.sum((z1 - z_half) ** 2) - np.sum((z2 - z_half) ** 2)) / (2 * eta)
    np.testing.assert_allclose(difference, expected, rtol=1e-12)
    np.testing.assert_allclose(_grad(z_half, z_t, grad_t, eta=eta), 0, atol=1e-15)


def test_sso_surrogate_paper_and_code_forms_agree_under_inverse_step(anchor):
    rng, z_t, grad_t = anchor
    eta = 0.2
    eta_c = 1 / (2 * eta)
    n, k = z_t.shape
    z = z_t + rng.standard_normal(z_t.shape)
    code = sso_surrogate(z, z_t, grad_t, eta=eta_c, form="code")
    paper = sso_surrogate(z, z_t, grad_t, eta=eta, loss_t=1.5)
    # code·η_c·n·k = paper − ℓ(z_t) + ⟨∇ℓ, z_t⟩
    np.testing.assert_allclose(code * eta_c * n * k, paper - 1.5 + np.sum(grad_t * z_t), rtol=1e-12)
    code_grad = _grad(z, z_t, grad_t, eta=eta_c, form="code")
    np.testing.assert_allclose(code_grad * eta_c * n * k, _grad(z, z_t, grad_t, eta=eta), rtol=1e-12)
    # a linear model z = XΘ: both forms' gradients in Θ vanish at the least-squares projection of
    # z_{t+½} = z_t − η∇ℓ onto the model's range (the same minimizer)
    x = rng.standard_normal((n, 3))
    theta_star = np.linalg.lstsq(x, z_t - eta * grad_t, rcond=None)[0]
    z_star = x @ theta_star
    np.testing.assert_allclose(x.T @ _grad(z_star, z_t, grad_t, eta=eta), 0, atol=1e-12)
    np.testing.assert_allclose(x.T @ _grad(z_star, z_t, grad_t, eta=eta_c, form="code"), 0, atol=1e-12)
    # away from it the Θ-gradient is not zero (the check above can fail)
    assert np.abs(x.T @ _grad(z_star + 0.1, z_t, grad_t, eta=eta)).max() > 1e-3


def test_sso_surrogate_linear_model_gradient_matches_finite_differences(anchor):
    # ∂g_t/∂Θ = Xᵀ[∇ℓ(z_t) + (XΘ − z_t)/η], checked by central differences in Θ
    rng, z_t, grad_t = anchor
    x, theta = rng.standard_normal((6, 3)), rng.standard_normal((3, 4))
    eta = 0.4
    analytic = x.T @ _grad(x @ theta, z_t, grad_t, eta=eta)
    np.testing.assert_allclose(analytic, x.T @ (grad_t + (x @ theta - z_t) / eta), rtol=1e-13)
    numeric = np.zeros_like(theta)
    step = 1e-6
    for index in np.ndindex(theta.shape):
        shifted = np.zeros_like(theta)
        shifted[index] = step
        plus = sso_surrogate(x @ (theta + shifted), z_t, grad_t, eta=eta)
        minus = sso_surrogate(x @ (theta - shifted), z_t, grad_t, eta=eta)
        numeric[index] = (plus - minus) / (2 * step)
    np.testing.assert_allclose(numeric, analytic, rtol=1e-7, atol=1e-7)


def test_sso_surrogate_code_form_matches_official_formula(anchor):
    # transcription of optimizers/sgd_fmdopt.py, SGD_FMDOpt.step, surrogate:
    #   surr = (dlt_dft * target / eta + (target - target_t) ** 2).mean(), at the default eta = 1e3
    rng, z_t, grad_t = anchor
    target = z_t + rng.standard_normal(z_t.shape)
    eta = 1e3
    official = (grad_t * target / eta + (target - z_t) ** 2).mean()
    np.testing.assert_allclose(sso_surrogate(target, z_t, grad_t, eta=eta, form="code"), official, rtol=1e-14)
    # its autograd gradient, derived term by term: (dlt_dft/eta + 2(target − target_t))/(n·k)
    official_grad = (grad_t / eta + 2 * (target - z_t)) / target.size
    np.testing.assert_allclose(_grad(target, z_t, grad_t, eta=eta, form="code"), official_grad, rtol=1e-14)


def test_sso_surrogate_refuses_loss_t_in_code_form(anchor):
    _, z_t, grad_t = anchor
    with pytest.raises(refimpl.InputError, match="drops the constant"):
        sso_surrogate(z_t, z_t, grad_t, eta=1e3, loss_t=1.0, form="code")
    with pytest.raises(refimpl.InputError, match="eta"):
        sso_surrogate(z_t, z_t, grad_t, eta=0.0)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_sso_surrogate_backends_match_reference(anchor, backend):
    if backend == "cupy[host]":  # the CuPy module's array logic on NumPy inputs
        from refimpl_cupy import host_backend

        chosen = host_backend()
    else:
        chosen = refimpl.backend(backend)
    rng, z_t, grad_t = anchor
    z = z_t + rng.standard_normal(z_t.shape)
    for kwargs in ({"eta": 0.3, "loss_t": 2.0}, {"eta": 1e3, "form": "code"}):
        value, pullback = refimpl.vjp("sso_surrogate", z, z_t, grad_t, backend=chosen, **kwargs)
        np.testing.assert_allclose(value, sso_surrogate(z, z_t, grad_t, **kwargs), rtol=1e-13)
        expected = 2 * _grad(z, z_t, grad_t, **kwargs)
        np.testing.assert_allclose(pullback(np.array(2.0))[0], expected, rtol=1e-13)
