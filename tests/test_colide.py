"""CoLiDE: the scores' values and gradients, σ* as the minimizer over σ and the envelope theorem,
the clamp, and the homotopy fit against the true DAG and a transcription of the official steps."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.structure_learning import colide_ev_score, colide_homotopy_fit, colide_nv_score, colide_sigma


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4)) * np.array([1.0, 2.0, 0.5, 1.5])
    return X - X.mean(axis=0), 0.3 * rng.standard_normal((4, 4))


def _fd(f, x, step=1e-6):
    x = np.asarray(x, dtype=float)
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[index] = step
        gradient[index] = (f(x + e) - f(x - e)) / (2 * step)
    return gradient


def test_scores_known_values():
    X = np.array([[1.0, 2.0], [-1.0, -2.0]])  # W = 0: column sums of squares 2 and 8, n = 2
    assert float(colide_ev_score(X, np.zeros((2, 2)), np.asarray(2.0))) == 10 / 8 + 2.0
    assert float(colide_nv_score(X, np.zeros((2, 2)), np.array([0.5, 4.0]))) == 2 / 2 + 8 / 16 + 2.25
    # x₁ = 2x₀ fitted: only column 0 is left
    W = np.array([[0.0, 2.0], [0.0, 0.0]])
    assert float(colide_nv_score(X, W, np.array([1.0, 1.0]))) == 2 / 4 + 1.0


@pytest.mark.parametrize("op", [colide_ev_score, colide_nv_score])
def test_score_gradients_match_finite_differences(op, data):
    X, W = data
    sigma = np.asarray(1.3) if op is colide_ev_score else np.array([0.8, 1.9, 0.4, 1.1])
    _, pullback = refimpl.vjp(op, X, W, sigma)
    g_W, g_sigma = pullback(np.array(1.5))
    np.testing.assert_allclose(g_W, 1.5 * _fd(lambda w: float(op(X, w, sigma)), W), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(g_sigma, 1.5 * _fd(lambda s: float(op(X, W, s)), sigma), rtol=1e-7, atol=1e-10)
    # the stated closed forms: −Σ̂(I − W)/σ (EV), columns over σ_j (NV)
    cov = X.T @ X / X.shape[0]
    np.testing.assert_allclose(g_W, -1.5 * cov @ (np.eye(4) - W) / sigma, rtol=1e-12)


@pytest.mark.parametrize("variance", ["equal", "nonequal"])
def test_closed_form_sigma_minimizes_the_score_and_zeroes_its_sigma_gradient(variance, data):
    X, W = data
    op = colide_ev_score if variance == "equal" else colide_nv_score
    sigma = colide_sigma(X, W, variance=variance, clamp_sigma=False)
    best, pullback = refimpl.vjp(op, X, W, sigma)
    np.testing.assert_allclose(pullback(np.array(1.0))[1], 0.0, atol=1e-14)
    for factor in (0.9, 0.99, 1.01, 1.1):
        assert float(op(X, W, sigma * factor)) > float(best)
    # the minimum: S(W, σ*) = dσ* (EV) or Σσ_j* (NV), since ρ/(2nσ) = dσ/2 there
    np.testing.assert_allclose(best, X.shape[1] * sigma if variance == "equal" else np.sum(sigma), rtol=1e-14)


def test_sigma_at_w_zero_is_the_rms_of_the_column_scales(data):
    X, _ = data
    d = X.shape[1]
    cov = X.T @ X / X.shape[0]
    sigma = colide_sigma(X, np.zeros((d, d)), clamp_sigma=False)
    np.testing.assert_allclose(sigma, math.sqrt(np.trace(cov) / d), rtol=1e-14)
    np.testing.assert_allclose(
        colide_sigma(X, np.zeros((d, d)), variance="nonequal", clamp_sigma=False),
        np.sqrt(np.diag(cov)),
        rtol=1e-14,
    )


@pytest.mark.parametrize("variance", ["equal", "nonequal"])
def test_envelope_theorem_the_profiled_score_has_the_score_gradient_at_sigma_star(variance, data):
    X, W = data
    op = colide_ev_score if variance == "equal" else colide_nv_score

    def profiled(w):
        return float(op(X, w, colide_sigma(X, w, variance=variance, clamp_sigma=False)))

    sigma = colide_sigma(X, W, variance=variance, clamp_sigma=False)
    _, pullback = refimpl.vjp(op, X, W, sigma)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], _fd(profiled, W), rtol=1e-6, atol=1e-9)


def test_clamp_raises_a_zero_sigma_to_the_floor_and_is_required_when_on():
    X = np.array([[1.0, 2.0], [-1.0, -2.0], [0.5, 1.0], [-0.5, -1.0]])
    W = np.array([[0.0, 2.0], [0.0, 0.0]])  # x₁ = 2x₀: σ₁* = 0
    np.testing.assert_array_equal(
        colide_sigma(X, W, variance="nonequal", clamp_sigma=False), [math.sqrt(0.625), 0.0]
    )
    np.testing.assert_array_equal(
        colide_sigma(X, W, variance="nonequal", sigma_floor=0.1), [math.sqrt(0.625), 0.1]
    )
    with pytest.raises(refimpl.InputError, match="sigma_floor"):
        colide_sigma(X, W)
    with pytest.raises(refimpl.InputError, match="σ > 0"):
        colide_nv_score(X, W, np.array([1.0, 0.0]))


# -- the homotopy fit -------------------------------------------------------------------------------
def _sem(W, n, seed, scales=None):
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, W.shape[0])) * (1.0 if scales is None else np.asarray(scales))
    X = noise @ np.linalg.inv(np.eye(W.shape[0]) - W)
    return X - X.mean(axis=0)


@pytest.mark.parametrize("variance", ["equal", "nonequal"])
def test_fit_recovers_the_true_dag_near_the_direct_regression(variance):
    W_true = np.array([[0.0, 1.2, 0.0], [0.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    X = _sem(W_true, 1000, 1, scales=None if variance == "equal" else [0.5, 1.0, 1.5])
    out = colide_homotopy_fit(
        X, lambda1=0.02, warm_iter=1500, max_iter=3000, variance=variance, T=3, lr=0.01,
        checkpoint=250, sigma_floor=1e-6,
    )  # fmt: skip
    W, sigma = out[0], out[1]
    np.testing.assert_array_equal(np.abs(W) > 0.3, W_true != 0)
    direct = np.zeros((3, 3))  # each node regressed on its true parents
    direct[0, 1] = np.linalg.lstsq(X[:, [0]], X[:, 1], rcond=None)[0][0]
    direct[1, 2] = np.linalg.lstsq(X[:, [1]], X[:, 2], rcond=None)[0][0]
    np.testing.assert_allclose(W[W_true != 0], direct[W_true != 0], atol=0.1)
    # σ is the closed form at the returned W (re-solved after every step)
    np.testing.assert_allclose(sigma, colide_sigma(X, W, variance=variance, sigma_floor=1e-6), rtol=1e-12)
    assert out[2].tolist() == [1.0, 0.9, 0.8]  # no restart: the default schedule
    np.testing.assert_array_equal(out[5], 0)


def _official_steps(X, lambda1, steps, lr, equal=True, s=1.0, mu=1.0, beta1=0.99, beta2=0.999):
    """The official ``minimize`` (SAMiatto/colide model.py), transcribed for a few steps that stay
    in the domain: W = 0, σ from the column norms, Adam, σ re-solved after each step."""
    n, d = X.shape
    cov = X.T @ X / n
    identity = np.eye(d)
    W = np.zeros((d, d))
    norms = np.linalg.norm(X, axis=0) / np.sqrt(n)
    sigma = np.min(norms) if equal else norms
    m = v = 0
    for it in range(1, steps + 1):
        M = np.linalg.inv(s * identity - W * W) + 1e-16
        if equal:
            G_score = -mu * cov @ (identity - W) / sigma
        else:
            G_score = -mu * (cov @ (identity - W) @ np.diag(1.0 / sigma))
        Gobj = G_score + mu * lambda1 * np.sign(W) + 2 * W * M.T
        m = m * beta1 + (1 - beta1) * Gobj
        v = v * beta2 + (1 - beta2) * Gobj**2
        W = W - lr * (m / (1 - beta1**it)) / (np.sqrt(v / (1 - beta2**it)) + 1e-8)
        dif = identity - W
        rhs = cov @ dif
        sigma = np.sqrt(np.trace(dif.T @ rhs) / d) if equal else np.sqrt(np.diag(dif.T @ rhs))
    return W, sigma


@pytest.mark.parametrize("variance", ["equal", "nonequal"])
def test_fit_reproduces_the_official_adam_steps(variance):
    X = _sem(np.array([[0.0, 0.8, 0.3], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]]), 50, 2)
    out = colide_homotopy_fit(
        X, lambda1=0.1, warm_iter=1, max_iter=7, T=1, lr=0.01, variance=variance, clamp_sigma=False
    )
    W, sigma = _official_steps(X, 0.1, 7, 0.01, equal=variance == "equal")
    np.testing.assert_allclose(out[0], W, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(out[1], sigma, rtol=1e-13)
    assert out[4].tolist() == [7] and out[6].tolist() == [1]  # the iteration limit, not tol


def test_fit_restarts_a_stage_with_larger_s_and_half_the_learning_rate():
    X = _sem(np.array([[0.0, 1.5, 0.0], [0.0, 0.0, -1.2], [0.0, 0.0, 0.0]]), 100, 42)
    out = colide_homotopy_fit(
        X, lambda1=0.05, warm_iter=300, max_iter=50, T=2, lr=0.05, s=np.array([1.0, 0.05]),
        sigma_floor=1e-6, checkpoint=50,
    )  # fmt: skip
    stage_s, stage_lr, restarts = out[2], out[3], out[5]
    assert restarts[0] == 0 and restarts[1] >= 1
    np.testing.assert_allclose(stage_s[1], 0.05 + 0.1 * restarts[1], rtol=1e-12)
    assert stage_lr[1] <= 0.05 * 0.5 ** restarts[1]
    # the restarted stage ran inside the domain ρ(W∘W) < s
    assert max(abs(np.linalg.eigvals(out[0] * out[0]))) < stage_s[1]


def test_fit_requires_the_floor_with_the_clamp_and_nonzero_columns_without():
    X = _sem(np.zeros((2, 2)), 10, 3)
    with pytest.raises(refimpl.InputError, match="sigma_floor"):
        colide_homotopy_fit(X, lambda1=0.1, warm_iter=2, max_iter=2)
    X[:, 1] = 0.0
    with pytest.raises(refimpl.InputError, match="column 1 is zero"):
        colide_homotopy_fit(X, lambda1=0.1, warm_iter=2, max_iter=2, clamp_sigma=False)
