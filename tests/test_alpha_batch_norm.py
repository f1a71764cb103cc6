"""α-BN: hand values, the batch-norm limits, the third-party convention and the gradients."""

import numpy as np

import refimpl
from refimpl.layers import alpha_batch_norm


def _inputs(seed=0, shape=(4, 3, 2, 3)):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.standard_normal(shape) * 2.0 + 0.5
    return x, rng.standard_normal(C), rng.uniform(0.5, 2.0, C), rng.standard_normal(C), rng.standard_normal(C)


def _batch_norm(x, mean, var, gamma, beta, eps):
    c = (slice(None), None, None)
    return gamma[c] * (x - mean[c]) / np.sqrt(var[c] + eps) + beta[c]


def test_alpha_batch_norm_matches_hand_computation():
    x = np.array([1.0, 3.0]).reshape(2, 1, 1, 1)  # μ_b = 2, v_b = 1; μ̂ = 1, σ̂² = 2
    y = alpha_batch_norm(
        x, np.zeros(1), np.full(1, 3.0), np.ones(1), np.zeros(1), alpha=0.5, alpha_weights="source", eps=1e-12
    )
    np.testing.assert_allclose(y.ravel(), [0.0, np.sqrt(2.0)], atol=1e-12)


def test_alpha_batch_norm_limits_are_train_and_eval_batch_norm():
    x, ms, vs, g, b = _inputs()
    eps = 1e-5
    batch_mean, batch_var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    train = _batch_norm(x, batch_mean, batch_var, g, b, eps)
    evaluation = _batch_norm(x, ms, vs, g, b, eps)
    np.testing.assert_allclose(
        alpha_batch_norm(x, ms, vs, g, b, alpha=0.0, alpha_weights="source"), train, atol=1e-12
    )
    np.testing.assert_allclose(
        alpha_batch_norm(x, ms, vs, g, b, alpha=1.0, alpha_weights="target"), train, atol=1e-12
    )
    np.testing.assert_allclose(
        alpha_batch_norm(x, ms, vs, g, b, alpha=1.0, alpha_weights="source"), evaluation, atol=1e-12
    )


def test_alpha_batch_norm_sides_are_mirror_images():
    x, ms, vs, g, b = _inputs(1)
    np.testing.assert_allclose(
        alpha_batch_norm(x, ms, vs, g, b, alpha=0.3, alpha_weights="source"),
        alpha_batch_norm(x, ms, vs, g, b, alpha=0.7, alpha_weights="target"),
        atol=1e-12,
    )


def test_alpha_batch_norm_matches_third_party_alpha_batchnorm_formula():
    # bethgelab/robustness robusta/batchnorm/bn.py AlphaBatchNorm.forward, transcribed:
    # running = (1 − α)·source + α·batch (BatchNorm2d(momentum=1) stores the unbiased variance)
    x, ms, vs, g, b = _inputs(2)
    alpha, eps = 0.1, 1e-5
    running_mean = (1 - alpha) * ms + alpha * x.mean(axis=(0, 2, 3))
    running_var = (1 - alpha) * vs + alpha * x.var(axis=(0, 2, 3), ddof=1)
    expected = _batch_norm(x, running_mean, running_var, g, b, eps)
    y = alpha_batch_norm(
        x, ms, vs, g, b, alpha=alpha, alpha_weights="target", eps=eps, unbiased=True, detach_stats=True
    )
    np.testing.assert_allclose(y, expected, atol=1e-12)


def test_alpha_batch_norm_input_gradient_matches_finite_differences_and_detached_is_r_gamma_g():
    x, ms, vs, g, b = _inputs(3)
    kw = {"alpha": 0.4, "alpha_weights": "source", "unbiased": True}
    g_y = np.random.default_rng(4).standard_normal(x.shape)
    direction = np.random.default_rng(5).standard_normal(x.shape)
    _, pullback = refimpl.vjp(alpha_batch_norm, x, ms, vs, g, b, **kw)
    g_x, g_gamma, g_beta = pullback(g_y)
    h = 1e-6
    fd = (
        (
            alpha_batch_norm(x + h * direction, ms, vs, g, b, **kw)
            - alpha_batch_norm(x - h * direction, ms, vs, g, b, **kw)
        )
        * g_y
    ).sum() / (2 * h)
    np.testing.assert_allclose((g_x * direction).sum(), fd, rtol=1e-7)
    _, pullback_detached = refimpl.vjp(alpha_batch_norm, x, ms, vs, g, b, **kw, detach_stats=True)
    g_x_detached, _, _ = pullback_detached(g_y)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    var_hat = 0.4 * vs + 0.6 * x.var(axis=(0, 2, 3)) * count / (count - 1)
    np.testing.assert_allclose(
        g_x_detached, g[:, None, None] * g_y / np.sqrt(var_hat + 1e-5)[:, None, None], atol=1e-12
    )
    x_hat = (alpha_batch_norm(x, ms, vs, g, b, **kw) - b[:, None, None]) / g[:, None, None]
    np.testing.assert_allclose(g_beta, g_y.sum(axis=(0, 2, 3)))
    np.testing.assert_allclose(g_gamma, (g_y * x_hat).sum(axis=(0, 2, 3)))


def test_alpha_batch_norm_full_batch_weight_gradient_is_orthogonal_to_constants():
    # w_b = 1 (plain batch norm): x̄ sums to zero per channel (shifting a channel changes nothing)
    x, ms, vs, g, b = _inputs(6)
    _, pullback = refimpl.vjp(alpha_batch_norm, x, ms, vs, g, b, alpha=0.0, alpha_weights="source")
    g_x, _, _ = pullback(np.random.default_rng(7).standard_normal(x.shape))
    np.testing.assert_allclose(g_x.sum(axis=(0, 2, 3)), 0.0, atol=1e-10)
