"""ERK allocation: the nonzero budget, the dense spill, ties, and rigl's loop transcribed."""

import math

import numpy as np
import pytest

import refimpl

qs = refimpl.quantization_sparsity

CONV_NET = np.array([[3, 3, 3, 64], [3, 3, 64, 128], [3, 3, 128, 256], [0, 0, 4096, 10]])


def _rigl(shapes, sparsity, dense=(), power=1.0):
    """google-research/rigl sparse_utils.get_sparsities_erdos_renyi (include_kernel), transcribed."""
    dense_layers = set(dense)
    while True:
        divisor, rhs, raw = 0.0, 0.0, {}
        for name, shape in enumerate(shapes):
            n_param = np.prod(shape)
            n_zeros = int(np.floor(n_param * sparsity))
            if name in dense_layers:
                rhs -= n_zeros
            else:
                rhs += n_param - n_zeros
                raw[name] = (np.sum(shape) / np.prod(shape)) ** power
                divisor += raw[name] * n_param
        eps = rhs / divisor
        max_prob = max(raw.values())
        if max_prob * eps > 1:
            dense_layers |= {name for name, p in raw.items() if p == max_prob}
        else:
            break
    return np.array([0.0 if n in dense_layers else 1 - eps * raw[n] for n in range(len(shapes))]), eps


def _unpadded(shapes):
    return [tuple(int(x) for x in row[row > 0]) for row in shapes]


@pytest.mark.parametrize(("sparsity", "power"), [(0.9, 1.0), (0.5, 1.0), (0.95, 0.5), (0.8, 0.0)])
def test_matches_rigl_transcribed(sparsity, power):
    ours, dense, eps = qs.erk_density_allocation(
        CONV_NET, np.zeros(4, bool), sparsity=sparsity, erk_power_scale=power
    )
    expected, expected_eps = _rigl(_unpadded(CONV_NET), sparsity, power=power)
    np.testing.assert_allclose(ours, expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(eps, expected_eps, rtol=1e-14)
    np.testing.assert_array_equal(dense, expected == 0.0)


def test_small_conv_layer_spills_to_dense_beside_a_huge_one():
    shapes = np.array([[3, 3, 3, 16], [0, 0, 4096, 4096]])
    sparsities, dense, eps = qs.erk_density_allocation(shapes, np.zeros(2, bool), sparsity=0.9)
    assert dense.tolist() == [True, False]  # ε·25/432 would be ≈ 11.8 > 1
    sizes = np.array([432.0, 4096.0**2])
    zeros = np.floor(0.9 * sizes)
    expected_eps = (sizes[1] - zeros[1] - zeros[0]) / (8192 / 4096**2 * sizes[1])
    np.testing.assert_allclose(eps, expected_eps, rtol=1e-14)
    np.testing.assert_allclose(sparsities, [0.0, 1 - expected_eps * 8192 / 4096**2], rtol=1e-14)


def test_nonzero_budget_is_met_within_the_number_of_layers():
    sizes = np.array([math.prod(s) for s in _unpadded(CONV_NET)], dtype=float)
    for sparsity in (0.5, 0.8, 0.9, 0.99):
        sparsities, _, _ = qs.erk_density_allocation(CONV_NET, np.zeros(4, bool), sparsity=sparsity)
        kept = np.sum((1 - sparsities) * sizes)
        assert abs(kept - np.sum(sizes - np.floor(sparsity * sizes))) < 1e-6 * sizes.sum()
        assert abs(kept - (1 - sparsity) * sizes.sum()) < 4  # floors: < L entries apart


def test_tied_maximum_raw_density_moves_both_layers():
    shapes = np.array([[4, 4], [4, 4], [200, 300]])
    sparsities, dense, _ = qs.erk_density_allocation(shapes, np.zeros(3, bool), sparsity=0.5)
    assert dense.tolist() == [True, True, False]
    np.testing.assert_allclose(sparsities[2], (0.5 * 60000 + 16) / 60000)  # takes their 16 zeros


def test_hand_example_two_layers():
    sparsities, _, eps = qs.erk_density_allocation(
        np.array([[10, 10], [100, 100]]), np.zeros(2, bool), sparsity=0.9
    )
    assert float(eps) == pytest.approx(1010 / 220, rel=1e-15)
    np.testing.assert_allclose(sparsities, [1 - 0.2 * 1010 / 220, 1 - 0.02 * 1010 / 220], rtol=1e-15)


def test_er_uses_the_last_two_dims_and_uniform_is_flat():
    s_er, _, eps = qs.erk_density_allocation(CONV_NET, np.zeros(4, bool), sparsity=0.9, distribution="er")
    raw = np.array([(3 + 64) / (3 * 64), (64 + 128) / (64 * 128), (128 + 256) / (128 * 256), 4106 / 40960])
    np.testing.assert_allclose(s_er[1:], 1 - float(eps) * raw[1:], rtol=1e-14)
    s_uni, dense, _ = qs.erk_density_allocation(CONV_NET, np.array([1, 0, 0, 0], bool), sparsity=0.7,
                                                 distribution="uniform")  # fmt: skip
    np.testing.assert_array_equal(s_uni, [0.0, 0.7, 0.7, 0.7])


def test_dense_layers_beyond_the_budget_are_refused():
    with pytest.raises(refimpl.InputError, match="< 0"):
        qs.erk_density_allocation(np.array([[2, 2], [100, 100]]), np.array([False, True]), sparsity=0.9)
