"""aTLAS: Λ = 0 gives θ₀, equal coefficients give task arithmetic, and λ̄ = ⟨∂L/∂θ, τ_t⟩ per
block, checked by finite differences through a tiny MLP composed block by block."""

import numpy as np

import refimpl
from refimpl.merging import atlas_composition


def test_atlas_by_hand():
    theta0 = np.array([1.0, 1.0])
    taus = np.stack([np.array([2.0, 0.0]), np.array([0.0, 4.0])], axis=-1)
    np.testing.assert_array_equal(atlas_composition(theta0, taus, np.array([0.5, -0.25])), [2.0, 0.0])


def test_zero_coefficients_reproduce_theta0_exactly():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        theta0 = rng.standard_normal((5, 3)).astype(dtype)
        taus = rng.standard_normal((5, 3, 4)).astype(dtype)
        theta = atlas_composition(theta0, taus, np.zeros(4, dtype=dtype))
        assert theta.dtype == dtype
        np.testing.assert_array_equal(theta, theta0)


def test_equal_coefficients_are_task_arithmetic():
    rng = np.random.default_rng(1)
    theta0, taus = rng.standard_normal((6, 2)), rng.standard_normal((6, 2, 3))
    lam = 0.4
    expected = theta0 + lam * taus.sum(axis=-1)
    np.testing.assert_allclose(
        atlas_composition(theta0, taus, np.full(3, lam)), expected, rtol=1e-14, atol=1e-15
    )


def test_vjp_is_the_inner_product_with_each_task_vector():
    rng = np.random.default_rng(2)
    theta0, taus, lam = rng.standard_normal((3, 4)), rng.standard_normal((3, 4, 2)), rng.standard_normal(2)
    g_theta = rng.standard_normal((3, 4))
    _, pullback = refimpl.vjp("atlas_composition", theta0, taus, lam)
    np.testing.assert_allclose(
        pullback(g_theta)[0], [np.sum(g_theta * taus[..., 0]), np.sum(g_theta * taus[..., 1])], rtol=1e-14
    )


# -- a tiny MLP composed block by block ---------------------------------------------------------------
def _mlp_loss_and_grads(params, x, y):
    """L = ½‖W2·tanh(W1 x + b1) + b2 − y‖² / B and its gradient w.r.t. every block, by hand."""
    h_pre = x @ params["w1"].T + params["b1"]
    h = np.tanh(h_pre)
    out = h @ params["w2"].T + params["b2"]
    residual = (out - y) / x.shape[0]
    loss = 0.5 * np.sum((out - y) ** 2) / x.shape[0]
    g_h_pre = (residual @ params["w2"]) * (1 - h**2)
    grads = {
        "w1": g_h_pre.T @ x,
        "b1": g_h_pre.sum(axis=0),
        "w2": residual.T @ h,
        "b2": residual.sum(axis=0),
    }
    return loss, grads


def test_blockwise_gradient_matches_finite_differences_through_a_tiny_mlp():
    rng = np.random.default_rng(3)
    shapes = {"w1": (4, 3), "b1": (4,), "w2": (2, 4), "b2": (2,)}
    theta0 = {k: rng.standard_normal(s) for k, s in shapes.items()}
    taus = [{k: 0.3 * rng.standard_normal(s) for k, s in shapes.items()} for _ in range(3)]
    lam = {k: rng.standard_normal(3) * 0.5 for k in shapes}  # blockwise: (T,) per tensor
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))

    def loss_of(coefficients):
        return _mlp_loss_and_grads(atlas_composition(theta0, taus, coefficients), x, y)[0]

    theta, pullback = refimpl.vjp("atlas_composition", theta0, taus, lam)
    _, g_theta = _mlp_loss_and_grads(theta, x, y)
    (g_lam,) = pullback(g_theta)
    assert set(g_lam) == set(shapes)
    step = 1e-6
    for name in shapes:
        for t in range(3):
            up = {k: v.copy() for k, v in lam.items()}
            down = {k: v.copy() for k, v in lam.items()}
            up[name][t] += step
            down[name][t] -= step
            numeric = (loss_of(up) - loss_of(down)) / (2 * step)
            np.testing.assert_allclose(g_lam[name][t], numeric, rtol=1e-6, atol=1e-9)

    # one coefficient per task, shared by the blocks: the gradient is the sum over blocks
    shared = np.array([0.2, -0.1, 0.4])
    _, pullback_shared = refimpl.vjp("atlas_composition", theta0, taus, shared)
    theta_shared = atlas_composition(theta0, taus, shared)
    (g_shared,) = pullback_shared(_mlp_loss_and_grads(theta_shared, x, y)[1])
    blockwise = {k: shared.copy() for k in shapes}
    _, pullback_blockwise = refimpl.vjp("atlas_composition", theta0, taus, blockwise)
    (g_blockwise,) = pullback_blockwise(_mlp_loss_and_grads(theta_shared, x, y)[1])
    np.testing.assert_allclose(g_shared, sum(g_blockwise.values()), rtol=1e-12)
    for t in range(3):
        up, down = shared.copy(), shared.copy()
        up[t] += step
        down[t] -= step
        np.testing.assert_allclose(
            g_shared[t], (loss_of(up) - loss_of(down)) / (2 * step), rtol=1e-6, atol=1e-9
        )
