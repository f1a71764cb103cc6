"""CGS transition matrix: hand values, rows summing to at most 1 (a contraction for γ < 1), the
official prepare_degree_A_b / prepare_attn_A_b transcribed, the clip's gradient, refusals."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import cgs_transition_matrix


def _graph(rng, n, count):
    pairs = rng.choice(n * n, size=count, replace=False)
    return pairs // n, pairs % n


def test_cgs_transition_matrix_hand_values():
    logits = np.array([[0.5], [1.7], [-0.3]])
    a = cgs_transition_matrix(logits, np.array([0, 0, 1]), np.array([1, 2, 0]), num_nodes=3)
    np.testing.assert_array_equal(a[0], [[0.0, 0.25, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    logits = np.array([[0.0], [np.log(3.0)], [5.0]])
    a = cgs_transition_matrix(
        logits, np.array([0, 0, 1]), np.array([1, 2, 0]), num_nodes=3, normalization="softmax"
    )
    np.testing.assert_allclose(a[0], [[0.0, 0.25, 0.75], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], rtol=1e-14)


@pytest.mark.parametrize("normalization", ["degree", "softmax"])
def test_cgs_transition_matrix_rows_sum_to_at_most_one(normalization):
    rng = np.random.default_rng(0)
    src, dst = _graph(rng, 12, 50)
    logits = rng.uniform(-1, 2, size=(src.size, 4)) * (3 if normalization == "softmax" else 1)
    a = cgs_transition_matrix(logits, src, dst, num_nodes=12, normalization=normalization)
    row_sums = a.sum(axis=2)
    assert np.all(a >= 0) and np.all(row_sums <= 1 + 1e-12)
    has_edges = np.bincount(src, minlength=12) > 0
    if normalization == "softmax":
        np.testing.assert_allclose(row_sums[:, has_edges], 1.0, rtol=1e-12)
    np.testing.assert_array_equal(row_sums[:, ~has_edges], 0.0)
    gamma = 0.5
    assert np.abs(gamma * a).sum(axis=2).max() <= gamma + 1e-12  # ‖γA‖_∞ ≤ γ < 1


def _official_degree(logits, src, dst, n):
    """CGS/gnn/CGS/fp_utils.py prepare_degree_A_b, transcribed (edges sorted by (src, dst), so the
    coalesced g.adj() indices are the edge order)."""
    out_degree = np.bincount(src, minlength=n)
    norm = out_degree[src]
    values = np.clip(logits, 0.0, 1.0) / norm[:, None]
    order = np.lexsort((dst, src))
    i, j = src[order], dst[order]
    a = np.zeros((logits.shape[1], n, n))
    a[:, i, j] = values[order].T
    return a


def _official_attention(logits, src, dst, n):
    """prepare_attn_A_b: DGL edge_softmax(norm_by='src'), written as a loop over source nodes."""
    a = np.zeros((logits.shape[1], n, n))
    for s in range(n):
        edges = np.flatnonzero(src == s)
        if edges.size:
            e = np.exp(logits[edges] - logits[edges].max(axis=0))
            a[:, s, dst[edges]] = (e / e.sum(axis=0)).T
    return a


def test_cgs_transition_matrix_matches_official_code():
    rng = np.random.default_rng(1)
    src, dst = _graph(rng, 7, 20)
    logits = rng.uniform(-0.5, 1.5, size=(20, 3))
    np.testing.assert_allclose(
        cgs_transition_matrix(logits, src, dst, num_nodes=7),
        _official_degree(logits, src, dst, 7),
        rtol=1e-15,
    )
    np.testing.assert_allclose(
        cgs_transition_matrix(logits, src, dst, num_nodes=7, normalization="softmax"),
        _official_attention(logits, src, dst, 7),
        rtol=1e-14,
    )


def test_cgs_transition_matrix_gradient_is_cotangent_over_degree_inside_the_clip():
    logits = np.array([[0.5, -0.2], [1.3, 0.7], [0.9, 0.1]])
    src, dst = np.array([0, 0, 1]), np.array([1, 2, 0])
    _, pullback = refimpl.vjp("cgs_transition_matrix", logits, src, dst, num_nodes=3)
    g_a = np.arange(18.0).reshape(2, 3, 3)
    (g_logits,) = pullback(g_a)
    expected = np.array([[g_a[0, 0, 1] / 2, 0.0], [0.0, g_a[1, 0, 2] / 2], [g_a[0, 1, 0], g_a[1, 1, 0]]])
    np.testing.assert_allclose(g_logits, expected, rtol=1e-15)


def test_cgs_transition_matrix_softmax_survives_huge_logits():
    a = cgs_transition_matrix(
        np.array([[1000.0], [999.0]]),
        np.array([0, 0]),
        np.array([0, 1]),
        num_nodes=2,
        normalization="softmax",
    )
    np.testing.assert_allclose(a[0, 0], [1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(1.0))], rtol=1e-14)


def test_cgs_transition_matrix_refuses_duplicate_edges_and_bad_nodes():
    logits = np.full((2, 1), 0.5)
    with pytest.raises(refimpl.InputError, match="duplicate"):
        cgs_transition_matrix(logits, np.array([0, 0]), np.array([1, 1]), num_nodes=2)
    with pytest.raises(refimpl.InputError, match="src"):
        cgs_transition_matrix(logits, np.array([0, 2]), np.array([1, 0]), num_nodes=2)
    with pytest.raises(refimpl.InputError, match="num_nodes"):
        cgs_transition_matrix(logits, np.array([0, 1]), np.array([1, 0]), num_nodes=2**20)
