"""CETT: its limits, a non-monotone example, the tie rule, and the official formula."""

import numpy as np

import refimpl

qs = refimpl.quantization_sparsity


def _draw(seed, T=6, F=20, D=5):  # noqa: N803
    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((T, F)), 0.0), rng.standard_normal((D, F))


def test_cett_is_zero_at_epsilon_zero_and_one_above_every_norm():
    h, w = _draw(0)
    values, sparsity = qs.cett(h, w, epsilon=0.0)
    np.testing.assert_array_equal(values, 0.0)
    np.testing.assert_array_equal(sparsity, 0.0)
    values, sparsity = qs.cett(h, w, epsilon=1e300)
    np.testing.assert_allclose(values, 1.0, rtol=1e-14)
    np.testing.assert_array_equal(sparsity, 1.0)


def test_cett_is_not_monotone_in_epsilon():
    h = np.array([[1.0, 1.0, 1.0]])
    w = np.array([[1.0, -1.5, 3.0], [0.0, 0.0, 0.0]])  # contributions 1, −1.5, 3; y = 2.5
    assert qs.cett(h, w, epsilon=1.25)[0][0] == 0.4
    assert qs.cett(h, w, epsilon=2.0)[0][0] == 0.2  # a larger ε, a smaller CETT
    np.testing.assert_allclose(qs.cett(h, w, epsilon=2.0)[1], [2 / 3])


def test_strict_and_inclusive_rules_differ_only_at_ties():
    h = np.array([[0.5, 1.0, 0.25, 2.0]])
    w = np.array([[2.0, 0.0, 4.0, 1.0], [0.0, 1.0, 0.0, 0.0]])  # norms exactly 1, 1, 1, 2
    strict, strict_sparsity = qs.cett(h, w, epsilon=1.0)
    inclusive, inclusive_sparsity = qs.cett(h, w, epsilon=1.0, inclusive=True)
    assert strict[0] == 0.0 and strict_sparsity[0] == 0.0
    np.testing.assert_allclose(inclusive, [np.sqrt(5 / 17)], rtol=1e-15)  # (2, 1) of (4, 1)
    assert inclusive_sparsity[0] == 0.75


def test_zero_token_has_cett_zero():
    h, w = _draw(1)
    h[2] = 0.0
    values, sparsity = qs.cett(h, w, epsilon=0.3)
    assert values[2] == 0.0 and sparsity[2] == 1.0


def test_cett_matches_the_official_formula_transcribed():
    # thunlp/SparsingLaw: col_norms = W.norm(dim=0); norms = |h|·col_norms; pruned = norms < t;
    # cett = ‖(h·pruned) @ Wᵀ‖ / ‖h @ Wᵀ‖ per token
    h, w = _draw(2, T=9, F=30, D=7)
    epsilon = 0.4
    col_norms = np.linalg.norm(w, axis=0)
    pruned = np.abs(h) * col_norms < epsilon
    expected = np.linalg.norm((h * pruned) @ w.T, axis=1) / np.linalg.norm(h @ w.T, axis=1)
    values, sparsity = qs.cett(h, w, epsilon=epsilon)
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    np.testing.assert_array_equal(sparsity, pruned.mean(axis=1))


def test_cett_is_invariant_to_scaling_h_and_epsilon_together_and_to_neuron_order():
    h, w = _draw(3)
    values, sparsity = qs.cett(h, w, epsilon=0.5)
    scaled, scaled_sparsity = qs.cett(4.0 * h, w, epsilon=2.0)  # powers of two: exact
    np.testing.assert_allclose(scaled, values, rtol=1e-14)
    np.testing.assert_array_equal(scaled_sparsity, sparsity)
    order = np.random.default_rng(0).permutation(h.shape[1])
    permuted, permuted_sparsity = qs.cett(h[:, order], w[:, order], epsilon=0.5)
    np.testing.assert_allclose(permuted, values, rtol=1e-12)
    np.testing.assert_array_equal(permuted_sparsity, sparsity)


def test_float32_outputs_keep_the_dtype():
    h, w = _draw(4)
    values, sparsity = qs.cett(h.astype(np.float32), w.astype(np.float32), epsilon=0.5)
    assert values.dtype == np.float32 and sparsity.dtype == np.float32
