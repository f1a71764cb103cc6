"""Activation sparsity: the fraction of nonzeros per token, by hand and after top-k."""

import numpy as np

from refimpl.layers import activation_sparsity, topk_activation


def test_activation_sparsity_hand_values():
    h = np.array([[0.0, 1.5, 0.0, -0.0], [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(activation_sparsity(h), [0.25, 1.0, 0.0])


def test_activation_sparsity_after_topk_is_k_over_d():
    rng = np.random.default_rng(0)
    h = np.abs(rng.standard_normal((2, 3, 40))) + 0.1
    fraction = activation_sparsity(topk_activation(h, k=3))
    assert fraction.shape == (2, 3)
    np.testing.assert_allclose(fraction, 3 / 40, rtol=1e-15)


def test_activation_sparsity_keeps_float32():
    assert activation_sparsity(np.array([[0.0, 1.0]], dtype=np.float32)).dtype == np.float32
