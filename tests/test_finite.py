"""The finiteness policy: NaN and ±inf in float inputs are refused in the op layer, on every
backend, unless the op's spec allows them; one switch turns the check off."""

import os
import subprocess
import sys

import numpy as np
import pytest

import refimpl
from refimpl_numba._finite import all_finite

X = np.random.default_rng(0).standard_normal((4, 8))
GAMMA, BETA = np.ones(8), np.zeros(8)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(("value", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_a_non_finite_input_is_refused_with_its_first_index(backend, value, shown):
    x = X.copy()
    x[2, 5] = value
    x[3, 1] = value
    with pytest.raises(refimpl.InputError) as error:
        refimpl.backend(backend).get("layer_norm")(x, GAMMA, BETA)
    assert str(error.value).startswith("layer_norm: argument 'x': expected finite values")
    assert str(error.value).endswith(f"got {shown} at index (2, 5)")


def test_a_zero_d_input_and_a_one_d_input_name_the_value():
    with pytest.raises(refimpl.InputError, match=r"argument 'gamma'.*got nan at index 3$"):
        refimpl.get("layer_norm")(X, np.where(np.arange(8) == 3, np.nan, 1.0), BETA)
    losses = np.array([1.0, 2.0])
    weights = refimpl.get("kl_dro_compositional_weights")
    with pytest.raises(refimpl.InputError, match=r"argument 'log_u'.*-inf allowed.*got nan$"):
        weights(losses, np.asarray(np.nan), r=1.0, beta=0.5, n_train=10)


def test_a_spec_that_allows_minus_inf_accepts_it_and_only_it():
    weights = refimpl.get("kl_dro_compositional_weights")
    w, log_u = weights(np.array([1.0, 2.0]), np.asarray(-np.inf), r=1.0, beta=0.5, n_train=10)
    assert np.all(np.isfinite(w)) and np.isfinite(log_u)
    with pytest.raises(refimpl.InputError, match="got inf$"):
        weights(np.array([1.0, 2.0]), np.asarray(np.inf), r=1.0, beta=0.5, n_train=10)


def test_finite_values_whose_sum_overflows_are_accepted():
    x = np.full((2, 8), 3e38, np.float32)  # Σ overflows float32; every entry is finite
    for backend in (None, refimpl.backend("numba").all_finite):
        refimpl.get("layer_norm").bind(
            (x, np.ones(8, np.float32), np.zeros(8, np.float32)), {}, all_finite=backend
        )
    x[1, 3] = np.inf
    with pytest.raises(refimpl.InputError, match=r"got inf at index \(1, 3\)"):
        refimpl.get("layer_norm").bind((x, np.ones(8, np.float32), np.zeros(8, np.float32)), {})


def test_a_non_finite_cotangent_is_refused():
    y, pullback = refimpl.vjp("layer_norm", X, GAMMA, BETA, backend="numba")
    cotangent = np.ones_like(y)
    cotangent[1, 1] = np.inf
    with pytest.raises(refimpl.InputError, match=r"cotangent of output 'y'.*got inf at index \(1, 1\)"):
        pullback(cotangent)


def test_the_switch_works_as_a_call_and_as_a_context_manager():
    x = X.copy()
    x[0, 0] = np.nan
    op = refimpl.get("layer_norm")
    assert refimpl.check_finite_enabled()
    with refimpl.set_check_finite(False):
        assert not refimpl.check_finite_enabled()
        assert np.isnan(op(x, GAMMA, BETA)[0]).all()  # NaN in, NaN out: the caller's choice
    assert refimpl.check_finite_enabled()
    refimpl.set_check_finite(False)
    try:
        op(x, GAMMA, BETA)
    finally:
        refimpl.set_check_finite(True)
    with pytest.raises(refimpl.InputError):
        op(x, GAMMA, BETA)


def test_the_environment_variable_sets_the_initial_state():
    code = "import refimpl; print(refimpl.check_finite_enabled())"
    env = {**os.environ, "REFIMPL_CHECK_FINITE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_numba_test_agrees_with_numpy_on_every_kind_of_entry(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1 << 17).astype(dtype)
    assert all_finite(x)
    for value in (np.nan, np.inf, -np.inf):
        for position in (0, 12345, x.size - 1):
            bad = x.copy()
            bad[position] = value
            assert not all_finite(bad)
    huge = np.full(1 << 17, np.finfo(dtype).max, dtype)
    assert all_finite(huge)  # x − x = 0: no overflow
    assert all_finite(x[::2])  # a strided view takes NumPy's path
    assert not all_finite(np.where(np.arange(x.size) == 7, np.nan, x)[::-1])


def test_a_result_beyond_the_dtype_is_a_range_error_naming_the_magnitudes():
    rng = np.random.default_rng(2)
    h_merged = (rng.standard_normal((3, 4)) * 1e30).astype(np.float32)
    h_expert = rng.standard_normal((3, 4)).astype(np.float32)
    mse = refimpl.get("hidden_state_mse")
    with pytest.raises(refimpl.RangeError) as error:
        mse(h_merged, h_expert)
    message = str(error.value)
    assert message.startswith("hidden_state_mse: loss is inf") and "float32" in message
    assert "in 'h_merged'" in message and "compute in float64" in message
    assert isinstance(error.value, refimpl.InputError)
    with refimpl.set_check_results(False):
        assert np.isinf(mse(h_merged, h_expert))
    assert np.isfinite(mse(h_merged.astype(np.float64), h_expert.astype(np.float64)))


def test_a_gradient_beyond_the_dtype_is_a_range_error_too():
    h = np.full((2, 3), 10.0, np.float32)
    y, pullback = refimpl.vjp("hidden_state_mse", h, np.zeros((2, 3), np.float32))
    with pytest.raises(refimpl.RangeError, match=r"the cotangent of 'h_merged' is inf"):
        pullback(np.asarray(3e38, np.float32))


def test_an_output_declared_non_finite_passes():
    temperature = refimpl.get("loss_reweighting_temperature")
    r = temperature(np.array([0, 5, 2000]), target_r=2.0, burnout_steps=1000)
    np.testing.assert_array_equal(r, [np.inf, np.inf, 2.0])
