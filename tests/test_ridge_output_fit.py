"""GBNN output step: the ridge solve against the normal equations, the official Newton line
search, loss decrease, the degenerate r = 0 step."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from refimpl.solvers import boosting_pseudo_residuals, ridge_output_fit


def test_weights_match_the_normal_equations():
    rng = np.random.default_rng(0)
    H, r = rng.standard_normal((20, 4)), rng.standard_normal((20, 3))
    for lam in (0.0, 0.3, 10.0):
        v, f, rho, F_new = ridge_output_fit(H, r, r, np.zeros_like(r), lam=lam)
        direct = np.linalg.solve(H.T @ H + lam * np.eye(4), H.T @ r)
        np.testing.assert_allclose(v, direct, rtol=1e-11)
        np.testing.assert_allclose(f, H @ direct, rtol=1e-11)
        assert float(rho) == 1.0  # squared loss: s = 1
        np.testing.assert_allclose(F_new, H @ direct, rtol=1e-11)


def test_rank_deficient_features_give_the_minimum_norm_solution():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((10, 1))
    H, r = np.concatenate([h, h], axis=1), rng.standard_normal((10, 1))
    v, *_ = ridge_output_fit(H, r, r, np.zeros_like(r), lam=0.0)
    np.testing.assert_allclose(v, np.linalg.pinv(H) @ r, rtol=1e-12)
    np.testing.assert_allclose(v[0], v[1], rtol=1e-12)


def test_binary_newton_step_matches_the_official_formula_and_lowers_the_loss():
    rng = np.random.default_rng(2)
    y = rng.choice([-1.0, 1.0], size=(30, 1))
    F = 0.3 * rng.standard_normal((30, 1))
    r, _ = boosting_pseudo_residuals(y, F, loss="log_exponential")
    H = np.tanh(rng.standard_normal((30, 3)))
    v, f, rho, F_new = ridge_output_fit(H, r, y, F, lam=1e-3, loss="log_exponential", eta=1.0)
    # transcribed from GBNN `log_exponential_loss.newton_step`: Σ r f / Σ r (2y − r) f²
    official = np.sum(r * f) / np.sum(r * (2 * y - r) * f * f)
    np.testing.assert_allclose(rho, official, rtol=1e-13)

    def loss(s):
        return np.sum(np.logaddexp(0.0, -2 * y * (F + s * f)))

    assert loss(float(rho)) < loss(0.0)
    exact = minimize_scalar(loss).x
    np.testing.assert_allclose(float(rho), exact, rtol=0.05)  # one Newton step from s = 0


def test_multi_class_newton_step_matches_the_official_formula():
    rng = np.random.default_rng(3)
    y = np.eye(3)[rng.integers(0, 3, size=12)]
    F = rng.standard_normal((12, 3))
    r, _ = boosting_pseudo_residuals(y, F, loss="multi_class")
    H = np.tanh(rng.standard_normal((12, 2)))
    _, f, rho, F_new = ridge_output_fit(H, r, y, F, lam=0.1, loss="multi_class", eta=0.5)
    # transcribed from GBNN `multi_class_loss.newton_step`: P = y − r, −Σ f(y − P)/Σ f² P(P − 1)
    P = y - r
    official = -np.sum(f * (y - P)) / np.sum(f * f * P * (P - 1))
    np.testing.assert_allclose(rho, 0.5 * official, rtol=1e-13)
    np.testing.assert_allclose(P, softmax(F, axis=1), rtol=1e-14)
    before = -np.sum(y * log_softmax(F, axis=1))
    after = -np.sum(y * log_softmax(F_new, axis=1))
    assert after < before


def test_constant_step_uses_eta_and_the_update_is_F_plus_rho_f():
    rng = np.random.default_rng(4)
    y = rng.choice([-1.0, 1.0], size=(8, 1))
    F = rng.standard_normal((8, 1))
    r, _ = boosting_pseudo_residuals(y, F, loss="log_exponential")
    H = rng.standard_normal((8, 2))
    _, f, rho, F_new = ridge_output_fit(H, r, y, F, lam=0.2, loss="log_exponential", step="constant", eta=0.1)
    assert float(rho) == pytest.approx(0.1, rel=1e-15)
    np.testing.assert_allclose(F_new, F + 0.1 * f, rtol=1e-15)


@pytest.mark.parametrize("loss", ["log_exponential", "multi_class"])
def test_zero_residuals_give_a_zero_step_not_nan(loss):
    H = np.random.default_rng(5).standard_normal((4, 2))
    y = np.ones((4, 1)) if loss == "log_exponential" else np.tile([1.0, 0.0], (4, 1))
    F = np.ones_like(y)
    with np.errstate(all="raise"):
        v, f, rho, F_new = ridge_output_fit(H, np.zeros_like(y), y, F, lam=0.5, loss=loss)
    assert float(rho) == 0.0
    np.testing.assert_array_equal(F_new, F)
