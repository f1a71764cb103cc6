"""gradient_coherence: the paper's limits and the equality of its two expressions."""

import numpy as np
import pytest

import refimpl
from refimpl.other import gradient_coherence


def test_identical_gradients_have_coherence_one():
    g = np.tile(np.array([0.3, -2.0, 5.0]), (6, 1))
    alpha, alpha_perp = gradient_coherence(g)
    assert float(alpha) == pytest.approx(1.0, rel=1e-15)
    assert float(alpha_perp) == pytest.approx(1 / 6, rel=1e-15)


@pytest.mark.parametrize("m", [1, 2, 5, 8])
def test_orthogonal_equal_norm_gradients_reach_the_orthogonal_limit(m):
    q, _ = np.linalg.qr(np.random.default_rng(m).standard_normal((8, 8)))
    alpha, alpha_perp = gradient_coherence(2.5 * q[:m])
    assert float(alpha) == pytest.approx(1 / m, rel=1e-13)
    assert float(alpha_perp) == 1 / m


def test_double_sum_over_pairs_equals_the_mean_gradient_form():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((7, 11)) + rng.standard_normal(11)
    m = g.shape[0]
    pairs = sum(g[i] @ g[j] for i in range(m) for j in range(m)) / m**2  # E_{i,j}⟨g_i, g_j⟩
    diagonal = sum(g[i] @ g[i] for i in range(m)) / m  # E_i⟨g_i, g_i⟩
    alpha, _ = gradient_coherence(g)
    assert float(alpha) == pytest.approx(pairs / diagonal, rel=1e-13)


def test_coherence_is_in_unit_interval_and_invariant_to_scale_and_order():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((5, 4))
    alpha, _ = gradient_coherence(g)
    assert 0.0 <= float(alpha) <= 1.0
    scaled, _ = gradient_coherence(-3.0 * g[::-1])
    assert float(scaled) == pytest.approx(float(alpha), rel=1e-13)


def test_cancelling_gradients_have_zero_coherence():
    g = np.array([[1.0, 2.0], [-1.0, -2.0]])
    alpha, _ = gradient_coherence(g)
    assert float(alpha) == 0.0


def test_float32_input_gives_float32_output_and_all_zero_is_refused():
    alpha, alpha_perp = gradient_coherence(np.array([[1.0, 0.0], [1.0, 2.0]], dtype=np.float32))
    assert alpha.dtype == np.float32 and alpha_perp.dtype == np.float32
    assert float(alpha) == pytest.approx(2 / 3, rel=1e-6)
    with pytest.raises(refimpl.InputError, match="nonzero gradient"):
        gradient_coherence(np.zeros((2, 3)))
