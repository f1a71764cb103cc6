"""Loss-based sample weights: hand-computed values, invariances, limits and profiles."""

import math

import numpy as np
import pytest

import refimpl
from refimpl import Backend, Impl
from refimpl.reweighting import loss_based_sample_weights as weights_of
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
def _failed_samples(forward, dtypes=("float64", "float32")):
    backend = Backend("mutant", {"loss_based_sample_weights": Impl(forward)})
    op, cases = refimpl.get("loss_based_sample_weights"), cases_for("loss_based_sample_weights")
    return {
        (result.sample, result.dtype)
        for sample in cases.samples(seeds=range(4))
        for dtype in dtypes
        for result in check_sample(op, cases, backend, sample, dtype)
        if result.status == "fail"
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

    failed = _failed_samples(forward)
    assert ("losses 1e4 + O(0.05), identity", "float32") in failed
    assert all(dtype == "float32" for _, dtype in failed)


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
