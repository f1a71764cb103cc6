"""Empirical Fisher diagonal: hand values, it is NOT the squared batch-mean gradient
(F = mean² + variance), minibatch code estimates, and the fast backends over many columns."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import empirical_fisher_diagonal

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def test_empirical_fisher_diagonal_hand_computed_values():
    np.testing.assert_array_equal(empirical_fisher_diagonal(np.array([[1.0, -2.0], [-1.0, 2.0]])), [1.0, 4.0])
    grads = np.array([[1.0, 0.0, 3.0], [2.0, 0.0, -3.0], [2.0, 0.0, 0.0]])
    np.testing.assert_array_equal(empirical_fisher_diagonal(grads), [3.0, 0.0, 6.0])


def test_empirical_fisher_diagonal_is_not_the_squared_mean_gradient():
    rng = np.random.default_rng(0)
    grads = 0.1 + rng.standard_normal((32, 10))
    fisher = empirical_fisher_diagonal(grads)
    squared_mean = grads.mean(axis=0) ** 2
    assert np.all(fisher > 2 * squared_mean)  # per-sample gradients disagree: the squares do not cancel
    # F = (mean g)² + population variance of g, per weight
    np.testing.assert_allclose(fisher, squared_mean + grads.var(axis=0), rtol=1e-13)
    # they agree only when every sample has the same gradient
    same = np.tile(rng.standard_normal(10), (5, 1))
    np.testing.assert_allclose(empirical_fisher_diagonal(same), same.mean(axis=0) ** 2, rtol=1e-15)


def test_empirical_fisher_diagonal_of_minibatch_rows_is_the_codes_estimate():
    # shaunak27/data-free-continual-learning, learners/kd.py, accumulate_block_memory:
    # F += grad(batch-mean loss)² · len(input) / len(dataloader), transcribed; equals this op
    # on the rows √|b|·ḡ_b, not on the per-sample gradients
    rng = np.random.default_rng(1)
    per_sample = rng.standard_normal((12, 4))
    batches = np.split(per_sample, 3)
    code = sum(b.mean(axis=0) ** 2 * len(b) / len(batches) for b in batches)
    rows = np.stack([np.sqrt(len(b)) * b.mean(axis=0) for b in batches])
    np.testing.assert_allclose(empirical_fisher_diagonal(rows), code, rtol=1e-14)
    # with every sample's gradient equal to g, the code's sum gives |b|·g², the Fisher g²
    same = np.tile(np.array([0.5, -2.0]), (12, 1))
    code_same = sum(b.mean(axis=0) ** 2 * len(b) / 3 for b in np.split(same, 3))
    np.testing.assert_allclose(code_same, 4 * empirical_fisher_diagonal(same), rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empirical_fisher_diagonal_backends_over_many_columns(backend):
    rng = np.random.default_rng(2)
    grads = rng.standard_normal((300, 1300)) * np.linspace(0.01, 10, 1300)  # three column chunks
    for dtype in (np.float64, np.float32):
        got = _backend(backend).get("empirical_fisher_diagonal")(grads.astype(dtype))
        assert got.dtype == dtype
        expected = np.mean(grads.astype(dtype).astype(np.float64) ** 2, axis=0)
        np.testing.assert_allclose(got, expected, rtol=1e-14 if dtype == np.float64 else 1e-7)
