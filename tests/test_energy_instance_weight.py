"""WEAT's energy instance weight: hand values, the range (0, 1/log 2], sign invariance, the
official formula where it does not overflow, and the overflow it has where it does."""

import numpy as np
import pytest

import refimpl
from refimpl.reweighting import energy_instance_weight

LOG_E_MINUS_1 = np.log(np.e - 1)


def _official(z):
    """The official compute_weights(energy_x(z)), transcribed with NumPy in z's dtype."""
    m = z.max(axis=1, keepdims=True)
    energy = -(np.log(np.exp(z - m).sum(axis=1)) + m[:, 0])  # torch.logsumexp is max-shifted too
    with np.errstate(over="ignore"):
        return 1 / np.log(1 + np.exp(np.abs(energy)))


def _logits_with_energy(energies, classes=3, seed=0):
    """Rows of logits whose energies −LSE(z) are the given values."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((len(energies), classes))
    lse = np.log(np.exp(z).sum(axis=1))
    return z - lse[:, None] - np.asarray(energies)[:, None]


def test_weights_match_hand_computed_values():
    z = np.array([[0.0], [LOG_E_MINUS_1], [-LOG_E_MINUS_1]])
    w = energy_instance_weight(z)
    np.testing.assert_allclose(w, [1 / np.log(2), 1.0, 1.0], rtol=1e-15)
    # two classes, z = log([1/4, 3/4]): LSE = 0, E = 0
    np.testing.assert_allclose(energy_instance_weight(np.log([[0.25, 0.75]])), [1 / np.log(2)], rtol=1e-15)
    # E = −3: w = 1/log(1 + e³)
    z = _logits_with_energy([-3.0])
    np.testing.assert_allclose(energy_instance_weight(z), [1 / np.log1p(np.exp(3.0))], rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_lie_in_zero_to_one_over_log_two(dtype):
    rng = np.random.default_rng(1)
    scale = rng.choice([0.1, 5.0, 300.0], size=(200, 1))
    z = rng.standard_normal((200, 10)) * scale + rng.uniform(-6, 2, size=(200, 1))  # E crosses 0
    z = np.concatenate([z, np.log(np.full((1, 10), 0.1))]).astype(dtype)  # and one row at E = 0
    w = energy_instance_weight(z)
    assert w.dtype == dtype
    assert np.all(w > 0)
    assert np.all(w <= dtype(1 / np.log(2)))
    np.testing.assert_allclose(w[-1], 1 / np.log(2), rtol=1e-6)  # the maximum, at E = 0
    assert w.min() < 0.01  # the draw covers large energies too


def test_weight_depends_on_the_energy_only_through_its_magnitude():
    energies = np.array([0.01, 0.5, 2.0, 30.0, 95.0, 1e3])
    w_negative = energy_instance_weight(_logits_with_energy(-energies, seed=2))
    w_positive = energy_instance_weight(_logits_with_energy(energies, classes=5, seed=3))
    np.testing.assert_allclose(w_negative, w_positive, rtol=1e-12)
    assert np.all(np.diff(w_negative) < 0)  # decreasing in |E|


def test_weight_equals_the_official_formula_where_it_does_not_overflow():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((50, 10)) * 4 + rng.uniform(-60, 60, size=(50, 1))
    np.testing.assert_allclose(energy_instance_weight(z), _official(z), rtol=1e-13)


def test_large_energy_gives_about_one_over_the_energy():
    energies = np.array([-1e3, 1e5, -1e30])
    w = energy_instance_weight(_logits_with_energy(energies, classes=1))
    np.testing.assert_allclose(w, 1 / np.abs(energies), rtol=1e-12)


@pytest.mark.parametrize(("dtype", "magnitude"), [(np.float32, 100.0), (np.float64, 800.0)])
def test_official_softplus_overflows_to_a_zero_weight_where_the_reference_does_not(dtype, magnitude):
    z = np.array([[magnitude, 0.0], [-magnitude, -magnitude]], dtype=dtype)
    np.testing.assert_array_equal(_official(z), [0.0, 0.0])  # exp(|E|) = inf: w = 1/inf
    w = energy_instance_weight(z)
    assert w.dtype == dtype
    expected = [1 / magnitude, 1 / (magnitude - np.log(2))]  # E = −m and m − log 2
    np.testing.assert_allclose(w, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_the_overflow_is_recorded_as_a_known_deviation():
    (deviation,) = refimpl.get("energy_instance_weight").deviations
    assert deviation.name == "weat-weight-softplus-overflow" and deviation.kind == "bug"
    (z,) = deviation.example.args
    np.testing.assert_array_equal(_official(z), deviation.example.official["weights"])
    np.testing.assert_allclose(energy_instance_weight(z), deviation.example.reference["weights"], rtol=1e-6)


def test_large_logits_do_not_overflow_the_log_sum_exp():
    z = np.array([[1e4, 1e4 - 1.0, 0.0]], dtype=np.float32)
    w = energy_instance_weight(z)
    np.testing.assert_allclose(w, [1 / (1e4 + np.log1p(np.exp(-1.0)))], rtol=1e-6)


def test_rows_are_weighted_independently():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 4)) * 3
    w = energy_instance_weight(z)
    for i in range(6):
        np.testing.assert_allclose(energy_instance_weight(z[i : i + 1]), w[i : i + 1], rtol=1e-15)


@pytest.mark.parametrize(
    "z",
    [np.ones(3), np.ones((2, 3), dtype=np.int64), np.array([[0.0, np.inf]]), np.ones((0, 3))],
    ids=["rank 1", "integers", "inf", "empty batch"],
)
def test_bad_input_raises_input_error_naming_the_argument(z):
    with pytest.raises(refimpl.InputError, match=r"^energy_instance_weight: argument 'z_nat'"):
        energy_instance_weight(z)
