"""CETT threshold search: the official integer bisection over a quantile grid, transcribed."""

import numpy as np
import pytest
import torch

import refimpl

qs = refimpl.quantization_sparsity


def _official(h, w, target, n_candidates=65536, quantile=0.99):
    """calc_thresholds_given_cett (thunlp/SparsingLaw, src/model_utils.py), transcribed."""
    norms = np.abs(h) * np.linalg.norm(w, axis=0)
    flat = torch.from_numpy(norms.ravel())
    sub = flat[:: max(flat.numel() // n_candidates, 1)]
    upper = torch.quantile(sub, quantile).item()
    thresholds = torch.linspace(flat.min().item(), upper, n_candidates, dtype=torch.float64).numpy()
    y = np.linalg.norm(h @ w.T, axis=1)

    def mean_cett(t):
        return np.mean(np.linalg.norm((h * (norms <= t)) @ w.T, axis=1) / y)

    left, right = 0, n_candidates - 1
    while left < right:
        mid = (left + right) // 2
        if mean_cett(thresholds[mid]) > target:
            right = mid
        else:
            left = mid + 1
    return thresholds[left - 1], mean_cett(thresholds[left - 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_matches_the_official_search(seed):
    rng = np.random.default_rng(seed)
    h = np.maximum(rng.standard_normal((40, 64)), 0.0) + 1e-3
    w = rng.standard_normal((16, 64))
    threshold, value, iterations = qs.cett_threshold_search(h, w, target=0.2, n_candidates=1024)
    expected_threshold, expected_value = _official(h, w, 0.2, n_candidates=1024)
    np.testing.assert_allclose(threshold, expected_threshold, rtol=1e-12)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    assert int(iterations) == 10  # ⌈log₂ 1024⌉ halvings of [0, 1023]
    # the reported mean CETT is cett's inclusive rule averaged over the tokens
    np.testing.assert_allclose(
        value, qs.cett(h, w, epsilon=float(threshold), inclusive=True)[0].mean(), rtol=1e-12
    )
    # left only grows as mid + 1 after c(t_mid) ≤ target, so t_{left−1} was visited and met it
    assert float(value) <= 0.2


def test_hand_grid():
    t, c, k = qs.cett_threshold_search(
        np.array([[1.0, 2.0, 4.0]]), np.eye(3), target=0.3, n_candidates=4, quantile=1.0
    )
    assert float(t) == 1.0 and int(k) == 2
    np.testing.assert_allclose(c, 1 / np.sqrt(21.0), rtol=1e-15)


def test_left_zero_is_refused_or_wraps_to_the_last_candidate_under_the_flag():
    h, w = np.array([[1.0, 2.0, 4.0]]), np.eye(3)
    with pytest.raises(refimpl.InputError, match="left = 0"):
        qs.cett_threshold_search(h, w, target=0.1, n_candidates=4, quantile=1.0)
    t, c, _ = qs.cett_threshold_search(h, w, target=0.1, n_candidates=4, quantile=1.0, wrap_left_zero=True)
    assert float(t) == 4.0 and float(c) == 1.0  # Python's thresholds[-1]
