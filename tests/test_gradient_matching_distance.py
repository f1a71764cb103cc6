"""DC/DCC layer gradient-matching distance: the official ``distance_wb`` transcribed, hand
values, the zero-norm subgradient, ε placement, scale invariance, the per-layer sum."""

import numpy as np
import pytest

import refimpl
from refimpl.data_selection import gradient_matching_distance

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _official_distance_wb(gwr, gws):
    """Saehyung-Lee/DCC utils.py ``distance_wb``, transcribed in NumPy."""
    shape = gwr.shape
    if len(shape) == 4:
        gwr = gwr.reshape(shape[0], shape[1] * shape[2] * shape[3])
        gws = gws.reshape(shape[0], shape[1] * shape[2] * shape[3])
    elif len(shape) == 3:
        gwr = gwr.reshape(shape[0], shape[1] * shape[2])
        gws = gws.reshape(shape[0], shape[1] * shape[2])
    elif len(shape) == 1:
        return 0.0
    return np.sum(
        1
        - np.sum(gwr * gws, axis=-1)
        / (np.linalg.norm(gwr, axis=-1) * np.linalg.norm(gws, axis=-1) + 0.000001)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_matching_distance_matches_official_match_loss_over_a_network(backend):
    rng = np.random.default_rng(0)
    shapes = [(8, 3, 3, 3), (8,), (4, 5, 6), (10, 32), (10,)]  # conv, bias, (C,h,w), linear, bias
    real = [rng.standard_normal(s) for s in shapes]
    syn = [0.3 * r + rng.standard_normal(r.shape) for r in real]
    op = _backend(backend).get("gradient_matching_distance")
    total = sum(float(op(r, s)) for r, s in zip(real, syn, strict=True))
    official = sum(_official_distance_wb(r, s) for r, s in zip(real, syn, strict=True))
    np.testing.assert_allclose(total, official, rtol=1e-12)


def test_gradient_matching_distance_hand_values_and_gradient():
    g_real = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    g_syn = np.array([[3.0, 0.0], [1.0, 0.0], [-2.0, -2.0]])  # parallel, orthogonal, antiparallel
    distance, pullback = refimpl.vjp("gradient_matching_distance", g_real, g_syn, eps=0.0)
    np.testing.assert_allclose(distance, 0.0 + 1.0 + 2.0, rtol=1e-15)
    (g_syn_bar,) = pullback(np.array(2.0))
    # row 1: −2·a/(‖a‖‖b‖) = −2(0, 2)/2; rows 0 and 2 are extrema of the cosine: gradient 0
    np.testing.assert_allclose(g_syn_bar, [[0.0, 0.0], [0.0, -2.0], [0.0, 0.0]], atol=1e-15)


def test_gradient_matching_distance_eps_is_added_to_the_product_of_norms():
    a = np.array([[1e-3, 0.0]])
    # 1 − 1e-6/(1e-6 + 1e-6) = 0.5; with ε on each norm it would be 1 − 1e-6/(1e-3 + 1e-6)² ≈ 0.002
    np.testing.assert_allclose(gradient_matching_distance(a, a), 0.5, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_matching_distance_zero_synthetic_row_takes_the_zero_subgradient(backend):
    g_real = np.array([[3.0, 4.0], [1.0, 0.0]])
    g_syn = np.array([[0.0, 0.0], [2.0, 0.0]])
    distance, pullback = refimpl.vjp("gradient_matching_distance", g_real, g_syn, backend=_backend(backend))
    np.testing.assert_allclose(distance, 1.0 + (1 - 2.0 / (2.0 + 1e-6)), rtol=1e-12)
    (g_syn_bar,) = pullback(np.array(1.0))
    np.testing.assert_allclose(g_syn_bar[0], -g_real[0] / 1e-6, rtol=1e-12)  # −a/ε
    assert np.all(np.isfinite(g_syn_bar))


def test_gradient_matching_distance_is_scale_invariant_per_row_up_to_eps():
    rng = np.random.default_rng(1)
    g_real, g_syn = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    scales = np.array([1.0, 10.0, 0.5, 3.0, 100.0])[:, None]
    base = gradient_matching_distance(g_real, g_syn, eps=0.0)
    np.testing.assert_allclose(
        gradient_matching_distance(g_real * 7.0, g_syn * scales, eps=0.0), base, rtol=1e-13
    )
    # and the gradient is orthogonal to each synthetic row (the cosine ignores the row's length)
    _, pullback = refimpl.vjp("gradient_matching_distance", g_real, g_syn, eps=0.0)
    (g_syn_bar,) = pullback(np.array(1.0))
    np.testing.assert_allclose((g_syn_bar * g_syn).sum(axis=1), 0.0, atol=1e-13)


def test_gradient_matching_distance_one_dimensional_parameters_contribute_nothing():
    rng = np.random.default_rng(2)
    bias_real, bias_syn = rng.standard_normal(9), rng.standard_normal(9)
    distance, pullback = refimpl.vjp("gradient_matching_distance", bias_real, bias_syn)
    assert float(distance) == 0.0
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], np.zeros(9))


def test_gradient_matching_distance_conv_rows_are_output_channels():
    rng = np.random.default_rng(3)
    conv_real, conv_syn = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal((4, 2, 3, 3))
    per_channel = sum(
        float(gradient_matching_distance(conv_real[o].reshape(1, -1), conv_syn[o].reshape(1, -1)))
        for o in range(4)
    )
    np.testing.assert_allclose(gradient_matching_distance(conv_real, conv_syn), per_channel, rtol=1e-13)
    # not the whole tensor's cosine
    whole = 1 - (conv_real * conv_syn).sum() / (np.linalg.norm(conv_real) * np.linalg.norm(conv_syn) + 1e-6)
    assert abs(per_channel - whole) > 0.5


def test_gradient_matching_distance_refuses_a_zero_row_with_eps_zero():
    with pytest.raises(refimpl.InputError, match="row 0 is zero"):
        gradient_matching_distance(np.zeros((2, 3)), np.ones((2, 3)), eps=0.0)
