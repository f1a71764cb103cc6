"""Loss-based sample weights: hand-computed values, invariances, limits and profiles."""

import math

import numpy as np
import pytest

import refimpl
from refimpl import Backend, Impl
from refimpl.reweighting import loss_based_sample_weights as weights_of
from refimpl.reweighting import loss_reweighting_temperature as temperature_at
from refimpl.reweighting import loss_weighted_objective as objective_of
from refimpl.reweighting.loss_based import normalized_losses
from refimpl_conformance import cases_for, check_sample

SCORED = ["linupper", "quadratic", "extremes", "identity"]
ALL = [*SCORED, "uniform"]


def _softmax(scores):
    e = [math.exp(s) for s in scores]
    return [x / sum(e) for x in e]


# ℓ = [1, 2, 4], δ = 1, r = 1: D = 3 and ℓ̃ = (2ℓ − 5)/3 = [−1, −1/3, 1]
HAND_COMPUTED = {
    "linupper": _softmax([0.0, 2 / 3, 1.0]),  # min(ℓ̃ + 1, 1)
    "quadratic": _softmax([0.0, 8 / 9, 0.0]),  # 1 − ℓ̃²
    "extremes": _softmax([1.0, 1 / 3, 1.0]),  # |ℓ̃|
    "identity": _softmax([-1.0, -1 / 3, 1.0]),  # ℓ̃
    "uniform": [1 / 3, 1 / 3, 1 / 3],
}


@pytest.mark.parametrize("strategy", ALL)
def test_weights_match_hand_computed_values_on_three_samples(strategy):
    w = weights_of(np.array([1.0, 2.0, 4.0]), strategy=strategy, r=1.0)
    np.testing.assert_allclose(w, HAND_COMPUTED[strategy], rtol=1e-15, atol=1e-16)


def test_hand_computed_values_with_delta_and_temperature():
    # δ = 2, r = 0.5: ℓ̃ = [−2, −2/3, 2]; linupper f = min(ℓ̃ + 2, 2) = [0, 4/3, 2]; f/r = [0, 8/3, 4]
    w = weights_of(np.array([1.0, 2.0, 4.0]), strategy="linupper", r=0.5, delta=2.0)
    np.testing.assert_allclose(w, _softmax([0.0, 8 / 3, 4.0]), rtol=1e-15)


def _losses(seed=0, n=12):
    return np.random.default_rng(seed).gamma(2.0, 1.0, n) + 1.0


@pytest.mark.parametrize("strategy", ALL)
def test_weights_sum_to_one(strategy):
    for r in (1e-3, 0.1, 1.0, 50.0):
        np.testing.assert_allclose(weights_of(_losses(), strategy=strategy, r=r).sum(), 1.0, rtol=1e-14)


@pytest.mark.parametrize("strategy", SCORED)
def test_weights_are_invariant_under_positive_affine_maps_of_the_losses(strategy):
    losses = _losses(1)
    w = weights_of(losses, strategy=strategy, r=0.3)
    for a, b in [(2.5, -1.0), (1e-3, 7.0), (40.0, 1e3)]:
        np.testing.assert_allclose(weights_of(a * losses + b, strategy=strategy, r=0.3), w, rtol=1e-10)


@pytest.mark.parametrize("strategy", ALL)
def test_all_equal_losses_give_exactly_uniform_weights(strategy):
    w = weights_of(np.full(5, 2.75), strategy=strategy, r=1e-3)
    np.testing.assert_array_equal(w, np.full(5, 1 / 5))


def test_all_equal_losses_normalize_to_zero_through_the_spread_guard():
    np.testing.assert_array_equal(normalized_losses(np.full(4, 1e4), 1.0), 0.0)


@pytest.mark.parametrize("strategy", ALL)
def test_one_sample_gets_weight_one(strategy):
    np.testing.assert_array_equal(weights_of(np.array([3.2]), strategy=strategy, r=0.01), [1.0])


def test_small_temperature_concentrates_on_the_argmax_of_the_score():
    losses = np.array([1.0, 2.6, 4.0, 2.2, 3.0])  # ℓ̃ = (2ℓ − 5)/3 = [−1, 0.067, 1, −0.2, 0.333]
    r = 1e-4
    np.testing.assert_allclose(weights_of(losses, strategy="identity", r=r), [0, 0, 1, 0, 0], atol=1e-100)
    np.testing.assert_allclose(weights_of(losses, strategy="quadratic", r=r), [0, 1, 0, 0, 0], atol=1e-100)
    # the score ties: |ℓ̃| = 1 at both ends, min(ℓ̃ + 1, 1) = 1 over the upper half
    np.testing.assert_allclose(weights_of(losses, strategy="extremes", r=r), [0.5, 0, 0.5, 0, 0], atol=1e-100)
    np.testing.assert_allclose(
        weights_of(losses, strategy="linupper", r=r), [0, 1 / 3, 1 / 3, 0, 1 / 3], rtol=1e-15, atol=1e-100
    )


@pytest.mark.parametrize("strategy", SCORED)
def test_large_temperature_gives_nearly_uniform_weights(strategy):
    losses = _losses(2, 9)
    np.testing.assert_allclose(weights_of(losses, strategy=strategy, r=1e8), 1 / 9, rtol=1e-7)


def test_uniform_is_exactly_one_over_n_whatever_the_losses():
    losses = np.array([1e-3, 5.0, 1e4, 7.0, 0.5, 2.0, 2.0])
    np.testing.assert_array_equal(weights_of(losses, strategy="uniform", r=1e-3), np.full(7, 1 / 7))


def test_linupper_weights_are_nondecreasing_in_the_loss():
    losses = np.sort(_losses(3, 30))
    assert np.all(np.diff(weights_of(losses, strategy="linupper", r=0.2)) >= 0)


def test_identity_weights_increase_strictly_with_the_loss():
    # the official code's "uniform": exp(ℓ̃/r) upweights hard samples
    losses = np.sort(_losses(4, 30))
    assert np.all(np.diff(weights_of(losses, strategy="identity", r=0.5)) > 0)


def test_quadratic_weights_peak_at_mid_range_losses():
    losses = np.linspace(1.0, 3.0, 21)  # mid-range is 2.0, index 10
    w = weights_of(losses, strategy="quadratic", r=0.2)
    assert np.argmax(w) == 10
    assert np.all(np.diff(w[:11]) > 0) and np.all(np.diff(w[10:]) < 0)
    np.testing.assert_allclose(w, w[::-1], rtol=1e-12)  # symmetric about the middle


def test_extremes_weights_favour_both_ends():
    losses = np.linspace(1.0, 3.0, 21)
    w = weights_of(losses, strategy="extremes", r=0.2)
    assert np.argmin(w) == 10 and w[0] == w.max() and w[-1] == w.max()
    assert np.all(np.diff(w[:11]) < 0) and np.all(np.diff(w[10:]) > 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_small_temperature_stays_finite_where_a_bare_exp_overflows(dtype):
    losses = np.array([1.0, 2.0, 4.0], dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        bare = np.exp(normalized_losses(losses, 1.0) / dtype(1e-3))  # exp(1000) = inf
    assert np.isinf(bare).any()
    w = weights_of(losses, strategy="identity", r=1e-3)
    assert w.dtype == dtype and np.all(np.isfinite(w))
    np.testing.assert_array_equal(w, [0.0, 0.0, 1.0])


def test_normalization_keeps_float32_accuracy_for_losses_near_1e4():
    losses32 = (1e4 + np.linspace(0.0, 0.05, 9)).astype(np.float32)
    exact = normalized_losses(losses32.astype(np.float64), 1.0)
    np.testing.assert_allclose(normalized_losses(losses32, 1.0), exact, atol=1e-6)
    # the published form 2δℓ/D − δ(ℓmax + ℓmin)/D cancels terms of ~4e5 in float32
    spread = losses32.max() - losses32.min()
    published = 2 * losses32 / spread - (losses32.max() + losses32.min()) / spread
    assert np.abs(published - exact).max() > 1e-3


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
@pytest.mark.parametrize("strategy", ALL)
def test_backends_agree_with_the_reference(backend, strategy):
    from refimpl_cupy import host_backend

    fast = (host_backend() if backend == "cupy[host]" else refimpl.backend(backend)).get(
        "loss_based_sample_weights"
    )
    for dtype, rtol in [(np.float64, 1e-14), (np.float32, 1e-5)]:
        losses = _losses(5, 17).astype(dtype)
        w = fast(losses, strategy=strategy, r=0.05)
        assert w.dtype == dtype
        np.testing.assert_allclose(w, weights_of(losses, strategy=strategy, r=0.05), rtol=rtol, atol=1e-30)


@pytest.mark.parametrize(
    ("losses", "kwargs", "argument"),
    [
        (np.array([1.0, 2.0]), {"strategy": "linupper", "r": 0.0}, "r"),
        (np.array([1.0, 2.0]), {"strategy": "linupper", "r": -0.5}, "r"),
        (np.array([1.0, 2.0]), {"strategy": "mid", "r": 1.0}, "strategy"),
        (np.array([1.0, 2.0]), {"strategy": "linupper", "r": 1.0, "delta": 0.0}, "delta"),
        (np.ones((2, 2)), {"strategy": "linupper", "r": 1.0}, "losses"),
        (np.array([1, 2]), {"strategy": "linupper", "r": 1.0}, "losses"),
    ],
)
def test_bad_input_raises_input_error_naming_op_and_argument(losses, kwargs, argument):
    with pytest.raises(refimpl.InputError, match=rf"^loss_based_sample_weights: argument '{argument}'"):
        weights_of(losses, **kwargs)


# -- the conformance suite catches the plausible wrong implementations -----------------
def _failed_samples(forward, dtypes=("float64", "float32"), status="fail"):
    backend = Backend("mutant", {"loss_based_sample_weights": Impl(forward)})
    op, cases = refimpl.get("loss_based_sample_weights"), cases_for("loss_based_sample_weights")
    return {
        (result.sample, result.dtype)
        for sample in cases.samples(seeds=range(4))
        for dtype in dtypes
        for result in check_sample(op, cases, backend, sample, dtype)
        if result.status == status
    }


def _scores(l_tilde, strategy, delta):
    return {
        "linupper": np.minimum(l_tilde + delta, delta),
        "quadratic": 1 - l_tilde**2 / delta**2,
        "extremes": np.abs(l_tilde),
        "identity": l_tilde,
    }[strategy]


def test_suite_catches_a_softmax_without_the_max_subtraction():
    def forward(losses, *, strategy, r, delta=1.0):
        if strategy == "uniform":
            return np.full(losses.shape[0], 1 / losses.shape[0], losses.dtype), None
        f = _scores(normalized_losses(losses, delta), strategy, losses.dtype.type(delta))
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(f / losses.dtype.type(r))  # the official g_func
            return e / e.sum(), None

    failed = {sample for sample, _ in _failed_samples(forward)}
    assert {f"r = 1e-3, {s}" for s in SCORED} <= failed


def test_suite_catches_the_cancelling_published_normalization_in_float32():
    def forward(losses, *, strategy, r, delta=1.0):
        if strategy == "uniform":
            return np.full(losses.shape[0], 1 / losses.shape[0], losses.dtype), None
        dtype = losses.dtype.type
        l_max, l_min = losses.max(), losses.min()
        spread = max(l_max - l_min, dtype(1e-6))
        l_tilde = 2 * dtype(delta) * losses / spread - dtype(delta) * (l_max + l_min) / spread
        f = _scores(l_tilde, strategy, dtype(delta))
        e = np.exp((f - f.max()) / dtype(r))
        return e / e.sum(), None

    # the published formula is right and loses the spread's digits to cancellation: inaccurate
    assert not _failed_samples(forward)
    inaccurate = _failed_samples(forward, status="inaccurate")
    assert ("losses 1e4 + O(0.05), identity", "float32") in inaccurate
    # only where the losses sit far from 0 relative to their spread (in float64 too, by less)
    assert {sample for sample, _ in inaccurate} <= {
        "losses 1e4 + O(0.05), identity",
        "losses 1e4 + O(1), quadratic",
        "spread below the 1e-6 guard",
    }


def test_suite_catches_an_unguarded_spread():
    def forward(losses, *, strategy, r, delta=1.0):
        n = losses.shape[0]
        if strategy == "uniform":
            return np.full(n, 1 / n, losses.dtype), None
        with np.errstate(invalid="ignore", divide="ignore"):
            l_tilde = (
                delta * ((losses - losses.min()) - (losses.max() - losses)) / (losses.max() - losses.min())
            )
            f = _scores(l_tilde, strategy, delta)
            e = np.exp((f - f.max()) / r)
            return (e / e.sum()).astype(losses.dtype), None

    failed = {sample for sample, _ in _failed_samples(forward)}
    assert {f"all losses equal, {s}" for s in SCORED} <= failed
    assert "spread below the 1e-6 guard" in failed


# -- the weighted objective Σ sg[w_i]·ℓ_i -----------------------------------------------


def _objective_and_gradient(losses, weights, world_size=1):
    objective, pullback = refimpl.vjp("loss_weighted_objective", losses, weights, world_size=world_size)
    (g_losses,) = pullback(np.array(1.0, dtype=losses.dtype))
    return float(objective), g_losses


def test_objective_matches_hand_computed_weighted_sum():
    # 0.2·1 + 0.3·2 + 0.5·4 = 2.8; times world size 3 = 8.4
    losses, weights = np.array([1.0, 2.0, 4.0]), np.array([0.2, 0.3, 0.5])
    assert float(objective_of(losses, weights)) == pytest.approx(2.8, rel=1e-15)
    assert float(objective_of(losses, weights, world_size=3)) == pytest.approx(8.4, rel=1e-15)


def test_objective_gradient_is_the_weights_times_world_size_and_none_for_weights():
    losses, weights = _losses(6, 5), np.array([0.1, 0.2, 0.3, 0.15, 0.25])
    objective, pullback = refimpl.vjp("loss_weighted_objective", losses, weights, world_size=4)
    grads = pullback(np.array(-0.5))
    assert len(grads) == 1  # the weights are a stop-gradient: no cotangent
    np.testing.assert_array_equal(grads[0], -0.5 * 4 * weights)


@pytest.mark.parametrize("strategy", SCORED)
def test_objective_gradient_is_invariant_under_a_shift_of_the_losses(strategy):
    # weights recomputed from ℓ + c are the same, so J shifts by exactly c (Σw = 1) and ∂J/∂ℓ = w is unchanged
    losses = _losses(7, 10)
    objective, grad = _objective_and_gradient(losses, weights_of(losses, strategy=strategy, r=0.4))
    for shift in (-0.5, 3.0, 100.0):
        shifted = losses + shift
        shifted_objective, shifted_grad = _objective_and_gradient(
            shifted, weights_of(shifted, strategy=strategy, r=0.4)
        )
        assert shifted_objective == pytest.approx(objective + shift, rel=1e-12)
        np.testing.assert_allclose(shifted_grad, grad, rtol=1e-11)


@pytest.mark.parametrize("strategy", ALL)
@pytest.mark.parametrize("world_size", [1, 4])
def test_objective_of_a_batch_of_one_is_its_loss_with_gradient_world_size(strategy, world_size):
    losses = np.array([2.75])
    weights = weights_of(losses, strategy=strategy, r=1e-3)
    objective, grad = _objective_and_gradient(losses, weights, world_size)
    assert objective == world_size * 2.75
    np.testing.assert_array_equal(grad, [world_size])


@pytest.mark.parametrize("strategy", ALL)
def test_objective_of_all_equal_losses_is_that_loss_with_uniform_gradient(strategy):
    losses = np.full(8, 1.25)
    objective, grad = _objective_and_gradient(losses, weights_of(losses, strategy=strategy, r=1e-3))
    assert objective == pytest.approx(1.25, rel=1e-15)
    np.testing.assert_allclose(grad, np.full(8, 1 / 8), rtol=1e-15)


@pytest.mark.parametrize("strategy", SCORED)
def test_objective_gradient_is_invariant_under_positive_scaling_of_the_losses(strategy):
    losses = _losses(8, 9)
    _, grad = _objective_and_gradient(losses, weights_of(losses, strategy=strategy, r=0.3))
    scaled = 7.0 * losses
    _, scaled_grad = _objective_and_gradient(scaled, weights_of(scaled, strategy=strategy, r=0.3))
    np.testing.assert_allclose(scaled_grad, grad, rtol=1e-10)


def test_data_parallel_average_of_device_objectives_equals_the_global_objective():
    # the official code: global weights, each device keeps its slice and multiplies by W;
    # data-parallel training averages the W device gradients
    world_size, per_device = 4, 3
    losses = _losses(9, world_size * per_device)
    weights = weights_of(losses, strategy="linupper", r=0.4)
    global_objective, global_grad = _objective_and_gradient(losses, weights)
    device_objectives, device_grads = [], []
    for device in range(world_size):
        part = slice(device * per_device, (device + 1) * per_device)
        objective, grad = _objective_and_gradient(losses[part], weights[part], world_size)
        device_objectives.append(objective)
        device_grads.append(grad)
    assert np.mean(device_objectives) == pytest.approx(global_objective, rel=1e-14)
    # the averaged gradient w.r.t. each device's own losses: (1/W)·W·w_dev = w_dev
    np.testing.assert_allclose(np.concatenate(device_grads) / world_size, global_grad, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_objective_and_gradient_keep_the_input_dtype(dtype):
    losses = _losses(10, 6).astype(dtype)
    weights = weights_of(losses, strategy="quadratic", r=0.5)
    objective, grad = _objective_and_gradient(losses, weights, 2)
    assert objective_of(losses, weights).dtype == dtype and grad.dtype == dtype


# -- the temperature schedule -----------------------------------------------------------
def test_temperature_is_infinite_before_the_official_1000_burnout_steps_then_the_target():
    steps = np.array([0, 1, 500, 998, 999, 1000, 1001, 19999])
    expected = [np.inf] * 5 + [0.4] * 3
    np.testing.assert_array_equal(temperature_at(steps, target_r=0.4), expected)


def test_temperature_without_burnout_is_the_target_from_step_zero():
    np.testing.assert_array_equal(temperature_at(np.array([0, 7]), target_r=1.0, burnout_steps=0), [1.0, 1.0])


def test_warmup_temperature_is_the_uniform_limit_of_the_weights():
    # r(t) = ∞ during the warm-up: the weights at a huge finite r approach the exact uniform 1/n
    losses = _losses(11, 7)
    for strategy in SCORED:
        np.testing.assert_allclose(
            weights_of(losses, strategy=strategy, r=1e9),
            weights_of(losses, strategy="uniform", r=1.0),
            rtol=1e-8,
        )


def test_schedule_refuses_negative_steps_and_a_zero_target():
    with pytest.raises(refimpl.InputError, match=r"^loss_reweighting_temperature: argument 'steps'"):
        temperature_at(np.array([-1]), target_r=1.0)
    with pytest.raises(refimpl.InputError, match=r"^loss_reweighting_temperature: argument 'target_r'"):
        temperature_at(np.array([1]), target_r=0.0)
