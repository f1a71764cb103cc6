"""The vectorizable exp/expm1 of the Numba backend against NumPy's."""

import numpy as np
import pytest

pytest.importorskip("numba")

from numba import njit  # noqa: E402

from refimpl_numba._vmath import exp, expm1  # noqa: E402


@njit
def _apply_exp(x, out):
    for i in range(x.size):
        out[i] = exp(x[i])


@njit
def _apply_expm1(x, out):
    for i in range(x.size):
        out[i] = expm1(x[i])


def _inputs():
    rng = np.random.default_rng(0)
    tiny = np.geomspace(1e-300, 0.5, 20_000)
    return np.concatenate(
        [np.linspace(-760.0, 720.0, 400_001), rng.uniform(-2, 2, 100_000), tiny, -tiny, [0.0, -0.0]]
    )


@pytest.mark.parametrize(("ours", "numpy_fn"), [(_apply_exp, np.exp), (_apply_expm1, np.expm1)])
def test_within_two_ulp_of_numpy_and_same_zeros_and_infinities(ours, numpy_fn):
    x = _inputs()
    out = np.empty_like(x)
    ours(x, out)
    with np.errstate(over="ignore"):
        expected = numpy_fn(x)
    normal = np.isfinite(expected) & (np.abs(expected) > np.finfo(np.float64).tiny)
    ulps = np.abs(out[normal] - expected[normal]) / (np.abs(expected[normal]) * np.finfo(np.float64).eps)
    assert ulps.max() <= 2.0
    # beyond the normal range: the same infinities, and subnormals/zeros within one subnormal step
    assert np.array_equal(np.isinf(out), np.isinf(expected))
    small = ~normal & np.isfinite(expected)
    assert np.abs(out[small] - expected[small]).max() <= 5e-324


def test_infinite_inputs():
    out = np.empty(2)
    _apply_exp(np.array([-np.inf, np.inf]), out)
    assert out[0] == 0.0 and out[1] == np.inf
    _apply_expm1(np.array([-np.inf, np.inf]), out)
    assert out[0] == -1.0 and out[1] == np.inf
