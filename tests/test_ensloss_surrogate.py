"""EnsLoss surrogate: the catalog's properties of the sampled derivatives (sign, bound,
monotone in the margin up to 1, ties, determinism), hand values, and agreement with a
transcription of the official ensLoss.forward."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import ensloss_surrogate


def _derivatives(s, eps, backend="numpy", **kwargs):
    """g itself: the stated VJP at cotangent n is g."""
    _, pullback = refimpl.vjp(ensloss_surrogate, s, eps, backend=backend, **kwargs)
    return pullback(np.array(float(s.shape[0])))[0]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("lam", [0.0, 0.7, -0.7])
def test_ensloss_derivatives_are_negative_bounded_and_monotone_up_to_margin_one(backend, lam):
    rng = np.random.default_rng(1)
    s = rng.standard_normal(400) * 2
    g = _derivatives(s, rng.standard_normal(400), backend=backend, lam=lam)
    assert np.all(g <= -1e-6) and np.all(g >= -1 - 1e-6)
    inside = np.argsort(s[s <= 1], kind="stable")
    assert np.all(np.diff(g[s <= 1][inside]) >= 0)
    assert np.any(g < -0.5)  # not all at the offset


def test_ensloss_is_deterministic_given_the_draws():
    rng = np.random.default_rng(2)
    s, eps = rng.standard_normal(50), rng.standard_normal(50)
    np.testing.assert_array_equal(_derivatives(s, eps), _derivatives(s.copy(), eps.copy()))
    assert float(ensloss_surrogate(s, eps)) == float(ensloss_surrogate(s, eps))


def test_ensloss_ties_take_derivatives_in_index_order():
    s = np.array([0.5, 0.5, 0.5])
    eps = np.array([-1.0, 0.0, -0.5])  # b = e^−1, 1, e^−0.5: d ascending = [−1, −e^−0.5, −e^−1]
    g = _derivatives(s, eps)
    np.testing.assert_allclose(g, [-1 - 1e-6, -np.exp(-0.5) - 1e-6, -np.exp(-1) - 1e-6], rtol=1e-14)


def test_ensloss_matches_hand_values_with_tail_and_clip():
    s = np.array([3.0, 0.5, -1.0, 0.5])
    eps = np.array([0.1, -2.0, 1.0, 0.3])  # λ = −1/2: b = (1 − ε/2)^−2 = [1.108, 0.25, 4, 1.384]
    g = _derivatives(s, eps, lam=-0.5)
    np.testing.assert_allclose(g, np.array([-0.25 / 3, -1, -1, -1]) - 1e-6, rtol=1e-14)
    loss = ensloss_surrogate(s, eps, lam=-0.5)
    assert float(loss) == pytest.approx(np.mean(g * s), rel=1e-14)


def test_ensloss_gradient_is_the_sampled_derivative_not_the_value_derivative():
    s = np.array([2.0, 0.5])
    loss, pullback = refimpl.vjp(ensloss_surrogate, s, np.zeros(2))
    (g_s,) = pullback(np.array(1.0))
    np.testing.assert_allclose(g_s, np.array([-0.5 - 1e-6, -1 - 1e-6]) / 2, rtol=1e-14)
    # the value's own derivative in s_0 (> 1, g_0·s_0 = −1 − 1e−6·s_0) is −1e−6/2, not g_0/2
    step = 1e-4
    moved = ensloss_surrogate(s + np.array([step, 0.0]), np.zeros(2))
    assert (float(moved) - float(loss)) / step == pytest.approx(-1e-6 / 2, rel=1e-4)


def _official_ensloss(output, target, eps, lam=0.0):
    """statmlben/ensLoss losses.py ensLoss.forward, transcribed in NumPy (targets 0/1, the draws
    given instead of torch.randn; a stable sort where torch.sort's tie order is unspecified)."""
    target = 2.0 * target - 1.0
    s_batch = output.flatten() * target.flatten()
    if lam == 0.0:
        rd_grad = -np.exp(eps)
    else:
        diff = 1.0 + lam * eps
        with np.errstate(divide="ignore"):
            rd_grad = -(np.where(diff > 0.0, diff, 0.0) ** (1.0 / lam))
    rd_grad = np.maximum(np.sort(rd_grad), -1.0)
    g_batch = np.zeros(len(target))
    g_batch[np.argsort(s_batch, kind="stable")] = rd_grad
    pos_ind = s_batch > 1.0
    g_batch[pos_ind] *= 1 / s_batch[pos_ind]
    g_batch = g_batch - 1e-6
    return (g_batch * s_batch).mean(), g_batch


@pytest.mark.parametrize("lam", [0.0, 0.4, -0.9])
def test_ensloss_matches_the_official_code(lam):
    rng = np.random.default_rng(3)
    output, target, eps = rng.standard_normal(64) * 3, rng.integers(0, 2, 64), rng.standard_normal(64)
    official_loss, official_g = _official_ensloss(output, target, eps, lam)
    s = output * (2.0 * target - 1.0)
    assert float(ensloss_surrogate(s, eps, lam=lam)) == pytest.approx(official_loss, rel=1e-13)
    np.testing.assert_allclose(_derivatives(s, eps, lam=lam), official_g, rtol=1e-13)
