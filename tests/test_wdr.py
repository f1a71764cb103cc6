"""EQ-Net WDR loss: hand values, affine invariance, uniform kurtosis, the official formula."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import wdr_loss


def _official(weights, kurt_rate, skew_rate):
    """runner/criterion.py of xuke225/EQ-Net transcribed in NumPy: torch.std is unbiased,
    ``del KurtosisList[0]``, sum of the layer terms divided by their number."""
    kurtosis_terms, skewness_terms = [], []
    for tensor in weights:
        mean_output, std_output = tensor.mean(), tensor.std(ddof=1)
        kurtosis_terms.append((np.mean(((tensor - mean_output) / std_output) ** 4) - 1.8) ** 2)
        skewness_terms.append((np.mean(((tensor - mean_output) / std_output) ** 3) - 0.0) ** 2)
    del kurtosis_terms[0]
    del skewness_terms[0]
    return kurt_rate * sum(kurtosis_terms) / len(kurtosis_terms) + skew_rate * sum(skewness_terms) / len(
        skewness_terms
    )


@pytest.fixture
def model():
    rng = np.random.default_rng(3)
    weights = [
        rng.standard_normal((4, 3, 3, 3)),
        rng.laplace(size=(8, 4, 3, 3)),
        rng.exponential(size=(10, 8)),
    ]
    return weights, np.concatenate([t.ravel() for t in weights]), np.array([t.size for t in weights])


def test_wdr_matches_the_official_formula(model):
    weights, w, sizes = model
    np.testing.assert_allclose(wdr_loss(w, sizes), _official(weights, 0.015, 1.0), rtol=1e-13)
    np.testing.assert_allclose(
        wdr_loss(w, sizes, kurt_rate=0.2, skew_rate=0.7), _official(weights, 0.2, 0.7), rtol=1e-13
    )


def test_wdr_hand_values():
    # [0, 1]: z = ±1/√2, K = 1/4, S = 0
    np.testing.assert_allclose(
        wdr_loss(np.array([0.0, 1.0]), np.array([2]), exclude_first=False), 0.015 * 1.55**2, rtol=1e-14
    )
    # [0, 0, 3]: d = (−1, −1, 2), s = √3, K = (1 + 1 + 16)/27 = 2/3, S = (−1 − 1 + 8)/(9√3)
    skewness = 6 / (9 * math.sqrt(3))
    np.testing.assert_allclose(
        wdr_loss(np.array([0.0, 0.0, 3.0]), np.array([3]), exclude_first=False),
        0.015 * (2 / 3 - 1.8) ** 2 + skewness**2,
        rtol=1e-14,
    )
    # [−1, 0, 1]: symmetric, S = 0, only the kurtosis term
    np.testing.assert_allclose(
        wdr_loss(np.array([-1.0, 0.0, 1.0]), np.array([3]), kurt_rate=1.0, exclude_first=False),
        (2 / 3 - 1.8) ** 2,
        rtol=1e-14,
    )


def test_wdr_is_invariant_to_affine_rescaling_of_a_tensor(model):
    _, w, sizes = model
    base = wdr_loss(w, sizes)
    moved = w.copy()
    moved[108:396] = 7.5 * moved[108:396] - 40.0  # the second tensor
    moved[396:] = 1e-3 * moved[396:] + 2.0
    np.testing.assert_allclose(wdr_loss(moved, sizes), base, rtol=1e-10)


def test_wdr_gradient_is_orthogonal_to_ones_and_to_the_weights_per_tensor(model):
    _, w, sizes = model
    _, pullback = refimpl.vjp(wdr_loss, w, sizes)
    (g_w,) = pullback(np.array(1.0))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    np.testing.assert_array_equal(g_w[: offsets[1]], 0.0)  # the first tensor is left out
    for start, stop in zip(offsets[1:-1], offsets[2:], strict=True):
        piece, grad = w[start:stop], g_w[start:stop]
        assert abs(grad.sum()) < 1e-12 * np.abs(grad).sum()
        assert abs(grad @ (piece - piece.mean())) < 1e-12 * np.abs(grad).sum() * np.abs(piece).max()
        assert np.abs(grad).max() > 1e-4


def test_uniform_weights_have_kurtosis_near_1_8():
    rng = np.random.default_rng(0)
    w = np.concatenate([rng.standard_normal(10), rng.uniform(-1, 1, 200_000)])
    # K ≈ 1.8 and S ≈ 0: the loss is ~0 (a normal tensor instead: K ≈ 3, (3 − 1.8)² = 1.44)
    assert wdr_loss(w, np.array([10, 200_000]), kurt_rate=1.0) < 1e-3
    normal = np.concatenate([rng.standard_normal(10), rng.standard_normal(200_000)])
    np.testing.assert_allclose(
        wdr_loss(normal, np.array([10, 200_000]), kurt_rate=1.0), 1.44, rtol=0.06
    )  # SE(K) = √(24/n) = 0.011


def test_wdr_refuses_constant_and_single_entry_tensors():
    with pytest.raises(refimpl.InputError, match="constant"):
        wdr_loss(np.array([1.0, 2.0, 3.0, 3.0]), np.array([2, 2]))
    with pytest.raises(refimpl.InputError, match="n >= 2"):
        wdr_loss(np.array([1.0, 2.0, 3.0]), np.array([2, 1]))
