"""LR-annealing scaling law: closed forms of the areas, the warm-up convention, the loss curve's
hand value and VJP, and recovering known parameters by a fit that uses the VJP."""

import numpy as np
import pytest
from scipy.optimize import minimize

import refimpl
from refimpl.other import lr_annealing_areas, lr_annealing_loss_curve


def test_constant_rate_has_zero_annealing_area():
    s1, s2 = lr_annealing_areas(np.full(50, 2e-4))
    np.testing.assert_allclose(s1, 2e-4 * np.arange(1, 51), rtol=1e-13)  # step 0 included
    assert np.all(s2 == 0)


@pytest.mark.parametrize("decay", [0.999, 0.9, 0.5])
def test_step_decay_gives_the_geometric_annealing_area(decay):
    k, high, low = 10, 1e-3, 3e-4
    lrs = np.where(np.arange(40) < k, high, low)
    _, s2 = lr_annealing_areas(lrs, decay_factor=decay)
    s = np.arange(40)
    # m_i = λ^{i−k} Δ for i ≥ k, so S_2(s) = Δ(1 − λ^{s−k+1})/(1 − λ)
    expected = np.where(s < k, 0.0, (high - low) * (1 - decay ** (s - k + 1)) / (1 - decay))
    np.testing.assert_allclose(s2, expected, rtol=1e-12, atol=1e-18)


def test_areas_match_the_loop_of_the_recurrence():
    rng = np.random.default_rng(0)
    lrs = rng.uniform(0, 1e-3, size=30)
    s1, s2 = lr_annealing_areas(lrs, decay_factor=0.95)
    m = np.zeros(30)
    for i in range(1, 30):
        m[i] = 0.95 * m[i - 1] + (lrs[i - 1] - lrs[i])
    np.testing.assert_allclose(s1, np.cumsum(lrs), rtol=1e-14)
    np.testing.assert_allclose(s2, np.cumsum(m), rtol=1e-12, atol=1e-18)


def test_zero_decay_gives_the_total_drop():
    lrs = np.array([1.0, 0.5, 0.75, 0.125])
    _, s2 = lr_annealing_areas(lrs, decay_factor=0.0)
    np.testing.assert_allclose(s2, np.cumsum(np.r_[0.0, -np.diff(lrs)]), rtol=1e-15)  # m_i = Δ_i


def test_rising_rate_gives_negative_annealing_area():
    _, s2 = lr_annealing_areas(np.array([0.1, 0.2, 0.4, 0.8]))
    assert s2[0] == 0 and np.all(s2[1:] < 0)


def test_warmup_counts_at_max_rate_and_adds_nothing_to_the_annealing_area():
    ramp = np.array([0.25, 0.5, 1.0, 1.0, 1.0, 0.5])
    s1, s2 = lr_annealing_areas(ramp, warmup_steps=2)
    np.testing.assert_allclose(s1, [1.0, 2.0, 3.0, 4.0, 5.0, 5.5], rtol=1e-15)
    np.testing.assert_allclose(s2, [0, 0, 0, 0, 0, 0.5], atol=1e-15)
    s1_actual, s2_actual = lr_annealing_areas(ramp, warmup_steps=2, warmup="actual")
    np.testing.assert_allclose(s1_actual, np.cumsum(ramp), rtol=1e-15)
    assert s2_actual[2] < 0  # the real ramp rises: negative momentum
    # "actual" ignores warmup_steps: the same as no warm-up at all
    np.testing.assert_array_equal(s2_actual, lr_annealing_areas(ramp)[1])


def test_float32_keeps_dtype():
    s1, s2 = lr_annealing_areas(np.array([1.0, 0.5, 0.5], np.float32))
    assert s1.dtype == s2.dtype == np.float32


def _params(l0=2.0, a=1.0, alpha=0.5, c=0.1):
    return tuple(np.array(v) for v in (l0, a, alpha, c))


def test_loss_curve_matches_hand_values():
    loss = lr_annealing_loss_curve(np.array([1.0, 4.0, 9.0]), np.array([0.0, 2.0, 1.0]), *_params())
    np.testing.assert_allclose(loss, [3.0, 2.5 - 0.2, 2 + 1 / 3 - 0.1], rtol=1e-15)


def test_loss_curve_vjp_matches_the_stated_gradients_and_finite_differences():
    rng = np.random.default_rng(1)
    s1, s2 = rng.uniform(0.5, 50, size=8), rng.uniform(0, 2, size=8)
    params = _params(2.3, 0.7, 0.4, 0.9)
    g = rng.standard_normal(8)
    _, pullback = refimpl.vjp(lr_annealing_loss_curve, s1, s2, *params)
    grads = pullback(g)
    power = s1**-0.4
    stated = [g.sum(), (g * power).sum(), -0.7 * (g * power * np.log(s1)).sum(), -(g * s2).sum()]
    np.testing.assert_allclose([float(x) for x in grads], stated, rtol=1e-13)
    for k in range(4):
        h = 1e-6
        plus = list(params)
        minus = list(params)
        plus[k] = params[k] + h
        minus[k] = params[k] - h
        fd = (g @ (lr_annealing_loss_curve(s1, s2, *plus) - lr_annealing_loss_curve(s1, s2, *minus))) / (
            2 * h
        )
        np.testing.assert_allclose(float(grads[k]), fd, rtol=1e-7, atol=1e-9)


def test_fit_with_the_vjp_recovers_the_parameters_across_schedules():
    # the paper's use: fit on two schedules (constant, step decay) and predict a third (cosine)
    steps = 400
    t = np.arange(steps)
    schedules = [
        np.full(steps, 1.0),
        np.where(t < 250, 1.0, 0.2),
        0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t / steps)),
    ]
    truth = np.array([2.5, 1.2, 0.45, 0.004])
    areas = [lr_annealing_areas(lrs) for lrs in schedules]
    observed = [lr_annealing_loss_curve(s1, s2, *map(np.array, truth)) for s1, s2 in areas]

    def objective(theta):
        value, grad = 0.0, np.zeros(4)
        for (s1, s2), target in zip(areas[:2], observed[:2], strict=True):
            loss, pullback = refimpl.vjp(lr_annealing_loss_curve, s1, s2, *map(np.array, theta))
            residual = loss - target
            value += 0.5 * residual @ residual
            grad += np.array([float(x) for x in pullback(residual)])
        return value, grad

    fit = minimize(
        objective,
        np.array([2.0, 1.0, 0.3, 0.0]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * 4,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000},
    )
    np.testing.assert_allclose(fit.x, truth, rtol=1e-3)
    predicted = lr_annealing_loss_curve(*areas[2], *map(np.array, fit.x))
    np.testing.assert_allclose(predicted, observed[2], rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: lr_annealing_areas(np.array([1.0, -0.1])), "lrs"),
        (lambda: lr_annealing_areas(np.ones(3), warmup_steps=4), "warmup_steps"),
        (lambda: lr_annealing_areas(np.ones(3), decay_factor=1.5), "decay_factor"),
        (lambda: lr_annealing_loss_curve(np.array([0.0, 1.0]), np.zeros(2), *_params()), "S1"),
    ],
)
def test_bad_input_raises_input_error(call, argument):
    with pytest.raises(refimpl.InputError, match=rf"argument '{argument}'"):
        call()
