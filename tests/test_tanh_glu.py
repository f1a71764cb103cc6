"""tanh_glu (ExcelFormer's attentive FFN gate): hand values, the official tanglu, the VJP formula."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.layers import tanh_glu


def test_tanh_glu_hand_computed():
    # a = [2, 3], b = [0, log 2]: tanh(log 2) = (2 − 1/2)/(2 + 1/2) = 3/5
    np.testing.assert_allclose(tanh_glu(np.array([2.0, 3.0, 0.0, math.log(2.0)])), [0.0, 1.8], rtol=1e-15)


def test_tanh_glu_matches_official_tanglu():
    # lib/deep.py tanglu: a, b = x.chunk(2, dim=-1); a * torch.tanh(b)  (first half = value)
    x = np.random.default_rng(0).standard_normal((3, 4, 10))
    a, b = np.split(x, 2, axis=-1)
    np.testing.assert_allclose(tanh_glu(x), a * np.tanh(b), rtol=1e-15)


def test_tanh_glu_value_half_is_first():
    # swapping the halves must change the result (tanh(a) ⊙ b is a different function)
    x = np.array([[0.5, 2.0]])
    assert tanh_glu(x)[0, 0] == pytest.approx(0.5 * math.tanh(2.0), rel=1e-15)
    assert tanh_glu(x)[0, 0] != pytest.approx(2.0 * math.tanh(0.5), rel=1e-3)


def test_tanh_glu_vjp_is_the_stated_formula():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 8))
    g = rng.standard_normal((5, 4))
    _, pullback = refimpl.vjp(tanh_glu, x)
    (g_x,) = pullback(g)
    a, b = x[:, :4], x[:, 4:]
    t = np.tanh(b)
    np.testing.assert_allclose(g_x[:, :4], g * t, rtol=1e-14)
    np.testing.assert_allclose(g_x[:, 4:], g * a * (1 - t**2), rtol=1e-14)


def test_tanh_glu_saturated_gate_has_zero_gate_gradient():
    x = np.array([[3.0, 50.0]])
    assert tanh_glu(x)[0, 0] == 3.0
    _, pullback = refimpl.vjp(tanh_glu, x)
    (g_x,) = pullback(np.ones((1, 1)))
    np.testing.assert_array_equal(g_x, [[1.0, 0.0]])


def test_tanh_glu_refuses_odd_width():
    with pytest.raises(refimpl.InputError, match="even last dimension"):
        tanh_glu(np.ones((2, 5)))
