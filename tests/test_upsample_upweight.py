"""Temperature sampling, scalarization and Cooldown: hand values, limits, the unbiasedness
identity and the variance comparison of the paper."""

import numpy as np
import pytest

import refimpl
from refimpl.reweighting import (
    cooldown_temperature_schedule,
    scalarization_weights,
    temperature_sampling_probs,
)

COUNTS = np.array([1e6, 5e4, 2e3, 80.0, 3.0])


def test_probs_match_hand_computed_values():
    # n = [1, 4, 9], τ = 2: n^{1/2} = [1, 2, 3], p = [1, 2, 3]/6
    p = temperature_sampling_probs(np.array([1.0, 4.0, 9.0]), tau=2.0)
    np.testing.assert_allclose(p, [1 / 6, 2 / 6, 3 / 6], rtol=1e-15)


def test_weights_match_hand_computed_values():
    # q = [1, 4, 9]/14, p = [1, 2, 3]/6, w = p/q = [14/6, 14/12, 14/18]
    w = scalarization_weights(np.array([1.0, 4.0, 9.0]), tau=2.0)
    np.testing.assert_allclose(w, [14 / 6, 14 / 12, 14 / 18], rtol=1e-14)


@pytest.mark.parametrize("tau", [0.05, 0.5, 1.0, 3.0, 100.0])
def test_probs_sum_to_one_and_weights_average_to_one_under_q(tau):
    p = temperature_sampling_probs(COUNTS, tau=tau)
    w = scalarization_weights(COUNTS, tau=tau)
    q = COUNTS / COUNTS.sum()
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-14)
    np.testing.assert_allclose((q * w).sum(), 1.0, rtol=1e-13)
    np.testing.assert_allclose(q * w, p, rtol=1e-12)


def test_temperature_one_is_the_natural_distribution():
    np.testing.assert_allclose(temperature_sampling_probs(COUNTS, tau=1.0), COUNTS / COUNTS.sum(), rtol=1e-13)
    np.testing.assert_allclose(scalarization_weights(COUNTS, tau=1.0), 1.0, rtol=1e-13)


def test_large_temperature_tends_to_uniform_over_nonempty_domains():
    counts = np.array([1e6, 10.0, 0.0, 1.0])
    p = temperature_sampling_probs(counts, tau=1e8)
    np.testing.assert_allclose(p, [1 / 3, 1 / 3, 0.0, 1 / 3], rtol=1e-6)
    w = scalarization_weights(counts, tau=1e8)
    np.testing.assert_allclose(w, [counts.sum() / (3 * n) if n else 0.0 for n in counts], rtol=1e-6)


def test_small_temperature_concentrates_on_the_largest_domain():
    np.testing.assert_allclose(temperature_sampling_probs(COUNTS, tau=1e-3), [1, 0, 0, 0, 0], atol=1e-300)


def test_empty_domains_get_exactly_zero_and_no_warning():
    counts = np.array([0.0, 120.0, 0.0, 3.0])
    with np.errstate(all="raise"):
        p = temperature_sampling_probs(counts, tau=3.0)
        w = scalarization_weights(counts, tau=3.0)
    assert p[0] == 0 and p[2] == 0 and w[0] == 0 and w[2] == 0
    np.testing.assert_allclose(
        p[[1, 3]], temperature_sampling_probs(np.array([120.0, 3.0]), tau=3.0), rtol=1e-15
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_power_form_overflows_where_the_log_form_does_not(dtype):
    counts = np.array([1e9, 3e6, 7.0], dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        bare = counts ** dtype(1 / 0.02)
        assert np.isinf(bare).any()
    p = temperature_sampling_probs(counts, tau=0.02)
    w = scalarization_weights(counts, tau=0.02)
    assert p.dtype == dtype and w.dtype == dtype
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(w))
    np.testing.assert_allclose(p, [1.0, 0.0, 0.0], atol=1e-30)


def test_same_expected_gradient_by_full_enumeration():
    # E_{i∼p}[g_i] = E_{i∼q}[w_i g_i] exactly, for any per-domain gradients
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((COUNTS.size, 3))
    for tau in (0.7, 2.0, 5.0):
        p = temperature_sampling_probs(COUNTS, tau=tau)
        w = scalarization_weights(COUNTS, tau=tau)
        q = COUNTS / COUNTS.sum()
        np.testing.assert_allclose(p @ grads, q @ (w[:, None] * grads), rtol=1e-12)


def test_temperature_sampling_has_the_lower_gradient_variance_on_a_toy_quadratic():
    # domains i with loss ½‖θ − c_i‖², θ = 0: per-domain gradients −c_i of equal norm
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((COUNTS.size, 4))
    grads = -centres / np.linalg.norm(centres, axis=1, keepdims=True)
    tau = 5.0
    p = temperature_sampling_probs(COUNTS, tau=tau)
    w = scalarization_weights(COUNTS, tau=tau)
    q = COUNTS / COUNTS.sum()
    mean = p @ grads
    exact_sampling = p @ (grads**2).sum(1) - mean @ mean
    exact_scalarization = q @ ((w[:, None] * grads) ** 2).sum(1) - mean @ mean
    assert exact_sampling < exact_scalarization  # Cauchy–Schwarz: Σ p²/q >= 1 for equal norms
    # Monte-Carlo, batches of 64 single-domain draws
    draws = 4000
    by_sampling = grads[rng.choice(COUNTS.size, size=(draws, 64), p=p)].mean(1)
    picked = rng.choice(COUNTS.size, size=(draws, 64), p=q)
    by_scalarization = (w[picked][..., None] * grads[picked]).mean(1)
    np.testing.assert_allclose(by_sampling.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(by_scalarization.mean(0), mean, atol=0.3)
    assert by_sampling.var(0).sum() < by_scalarization.var(0).sum() / 10


def test_cooldown_schedule_switches_at_the_given_steps():
    taus = np.array([10.0, 3.0, 1.0])
    steps = np.array([0, 999, 1000, 1001, 4999, 5000, 10**7])
    tau_t = cooldown_temperature_schedule(steps, taus, np.array([0, 1000, 5000]))
    np.testing.assert_array_equal(tau_t, [10, 10, 3, 3, 3, 1, 1])


def test_cooldown_schedule_keeps_the_dtype_of_the_temperatures():
    tau_t = cooldown_temperature_schedule(
        np.array([0, 5]), np.array([4.0, 1.0], np.float32), np.array([0, 3])
    )
    assert tau_t.dtype == np.float32
    np.testing.assert_array_equal(tau_t, [4.0, 1.0])


def test_cooldown_has_no_default_schedule():
    # PENDING in the catalog: the paper's τ values and switch points are not pinned
    with pytest.raises(refimpl.InputError, match="taus"):
        cooldown_temperature_schedule(np.array([0, 5]))


@pytest.mark.parametrize(
    ("counts", "tau", "argument"),
    [
        (np.array([1.0, -1.0]), 1.0, "counts"),
        (np.zeros(3), 1.0, "counts"),
        (np.array([1.0, np.inf]), 1.0, "counts"),
        (np.array([1.0, 2.0]), 0.0, "tau"),
        (np.array([1, 2]), 1.0, "counts"),
    ],
)
@pytest.mark.parametrize("op", [temperature_sampling_probs, scalarization_weights])
def test_bad_input_raises_input_error_naming_op_and_argument(op, counts, tau, argument):
    with pytest.raises(refimpl.InputError, match=rf"^{op.name}: argument '{argument}'"):
        op(counts, tau=tau)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
@pytest.mark.parametrize("op", ["temperature_sampling_probs", "scalarization_weights"])
def test_backends_agree_with_the_reference(backend, op):
    from refimpl_cupy import host_backend

    fast = (host_backend() if backend == "cupy[host]" else refimpl.backend(backend)).get(op)
    counts = np.array([1e9, 3e6, 0.0, 2e4, 150.0, 7.0, 1.0])
    for dtype, rtol in [(np.float64, 1e-12), (np.float32, 2e-5)]:
        for tau in (0.3, 1.0, 4.0):
            got = fast(counts.astype(dtype), tau=tau)
            assert got.dtype == dtype
            np.testing.assert_allclose(
                got, refimpl.get(op)(counts.astype(dtype), tau=tau), rtol=rtol, atol=1e-30
            )
