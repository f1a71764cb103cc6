"""Loopy BP: exact marginals on trees (enumeration), a loopy graph against an independent
edge-by-edge transcription and against enumeration, the official LLP potentials, the record."""

import itertools

import numpy as np
import pytest

import refimpl
from refimpl.solvers import pairwise_loopy_bp


def _exact_marginals(unary, edges, pairwise):
    n = unary.shape[0]
    total, positive = 0.0, np.zeros(n)
    for state in itertools.product([0, 1], repeat=n):
        y = np.array(state)
        energy = unary @ y + sum(table[y[s], y[t]] for (s, t), table in zip(edges, pairwise, strict=True))
        weight = np.exp(energy)
        total += weight
        positive += weight * y
    return positive / total


def _random_tree(rng, n):
    return np.array([[int(rng.integers(0, i)), i] for i in range(1, n)])


@pytest.mark.parametrize("damping", [0.0, 0.5])
def test_tree_marginals_are_exact(damping):
    rng = np.random.default_rng(0)
    for n in (2, 5, 9):
        edges = _random_tree(rng, n)
        unary, pairwise = rng.standard_normal(n), rng.standard_normal((n - 1, 2, 2))
        marginals, labels, changes, iterations, converged = pairwise_loopy_bp(
            unary, edges, pairwise, damping=damping
        )
        np.testing.assert_allclose(marginals, _exact_marginals(unary, edges, pairwise), rtol=1e-10)
        np.testing.assert_array_equal(labels, (marginals > 0.5).astype(int))
        assert int(iterations) == 100 and changes.shape == (100,) and not bool(converged)


def _transcribed_bp(unary, edges, pairwise, iterations, damping):
    """Flooding BP written per directed edge with 2-vectors (an independent transcription)."""
    directed = {}
    for (s, t), table in zip(edges, pairwise, strict=True):  # a pair listed twice: tables add
        directed[(s, t)] = directed.get((s, t), 0) + table  # ψ[y_s, y_t]
        directed[(t, s)] = directed.get((t, s), 0) + table.T
    messages = {key: np.zeros(2) for key in directed}
    for _ in range(iterations):
        new = {}
        for (i, j), table in directed.items():
            cavity = np.array([0.0, unary[i]])
            for k, target in directed:
                if target == i and k != j:
                    cavity = cavity + messages[(k, i)]
            out = np.array([np.logaddexp(table[0, y] + cavity[0], table[1, y] + cavity[1]) for y in (0, 1)])
            new[(i, j)] = damping * messages[(i, j)] + (1 - damping) * (out - np.logaddexp(*out))
        messages = new
    beliefs = np.array([[0.0, u] for u in unary])
    for (k, i), m in messages.items():
        beliefs[i] += m
    return 1 / (1 + np.exp(beliefs[:, 0] - beliefs[:, 1]))


def test_loopy_graph_matches_an_edge_by_edge_transcription_and_is_close_to_exact():
    # a 4-cycle plus a chord: flooding schedule, damping 0.5, 100 iterations (the official run)
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]])
    rng = np.random.default_rng(1)
    unary, pairwise = 0.5 * rng.standard_normal(4), 0.3 * rng.standard_normal((5, 2, 2))
    marginals, _, changes, _, _ = pairwise_loopy_bp(unary, edges, pairwise)
    np.testing.assert_allclose(marginals, _transcribed_bp(unary, edges, pairwise, 100, 0.5), rtol=1e-12)
    assert changes[-1] < 1e-12  # a fixed point of the undamped update
    np.testing.assert_allclose(marginals, _exact_marginals(unary, edges, pairwise), atol=0.01)  # weak loops


def test_official_llp_factor_expansion_is_the_gibbs_energy():
    # θ_i = −λ_bag(1 − 2k_b) − λ_sim Σ_j s_ij,  ψ(1,1) = 2λ_sim s_ij (graph) and −2λ_bag (same bag)
    sim_lambda = bag_lambda = 10.0
    edges = np.array([[0, 1], [2, 3], [1, 2], [0, 2], [1, 3]])  # (0,1), (2,3) are kNN edges; all in one bag
    similarity = {(0, 1): 0.5, (2, 3): 0.4}
    counts = 1.0  # one positive in the bag of 4
    unary = np.full(4, -bag_lambda * (1 - 2 * counts))
    tables = np.zeros((5, 2, 2))
    for e, (i, j) in enumerate(edges):
        s = similarity.get((int(i), int(j)), 0.0)
        unary[[i, j]] -= sim_lambda * s
        tables[e, 1, 1] = 2 * sim_lambda * s
    all_pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    bag_edges = np.array(all_pairs)
    bag_tables = np.zeros((6, 2, 2))
    bag_tables[:, 1, 1] = -2 * bag_lambda
    full_edges = np.concatenate([edges[:2], bag_edges])
    full_tables = np.concatenate([tables[:2], bag_tables])
    marginals, *_ = pairwise_loopy_bp(unary, full_edges, full_tables)
    # the expansion is the Gibbs energy: −λ_sim Σ s (y_i − y_j)² − λ_bag (Σy − k)², up to a constant
    exact = np.zeros(4)
    total = 0.0
    for state in itertools.product([0, 1], repeat=4):
        y = np.array(state)
        energy = (
            -sim_lambda * (0.5 * (y[0] - y[1]) ** 2 + 0.4 * (y[2] - y[3]) ** 2)
            - bag_lambda * (y.sum() - 1) ** 2
        )
        total += np.exp(energy)
        exact += np.exp(energy) * y
    exact /= total
    np.testing.assert_allclose(
        _exact_marginals(unary, full_edges, full_tables), exact, rtol=1e-12
    )  # the factor expansion is right
    # loopy BP on the dense bag clique with λ = 10 is far from exact (a known weakness of the
    # pairwise expansion); it still matches the edge-by-edge transcription
    np.testing.assert_allclose(
        marginals, _transcribed_bp(unary, full_edges, full_tables, 100, 0.5), rtol=1e-10
    )


def test_tolerance_stops_early_and_reports_convergence():
    rng = np.random.default_rng(2)
    edges = _random_tree(rng, 6)
    unary, pairwise = rng.standard_normal(6), rng.standard_normal((5, 2, 2))
    marginals, _, changes, iterations, converged = pairwise_loopy_bp(
        unary, edges, pairwise, tol=1e-8, max_iter=500
    )
    assert bool(converged) and changes[-1] <= 1e-8 and np.all(changes[:-1] > 1e-8)
    assert int(iterations) == changes.shape[0] < 500
    np.testing.assert_allclose(marginals, _exact_marginals(unary, edges, pairwise), rtol=1e-7)


def test_zero_iterations_give_the_unary_marginals():
    unary = np.array([0.0, np.log(3.0), -np.log(3.0)])
    marginals, labels, changes, iterations, _ = pairwise_loopy_bp(
        unary, np.array([[0, 1], [1, 2]]), np.ones((2, 2, 2)) * np.array([[1.0, 0.0], [0.0, 1.0]]), max_iter=0
    )
    np.testing.assert_allclose(marginals, [0.5, 0.75, 0.25], rtol=1e-15)
    np.testing.assert_array_equal(labels, [0, 1, 0])  # 0.5 is not above the threshold
    assert changes.shape == (0,) and int(iterations) == 0


def test_large_unary_terms_do_not_lose_the_pairwise_information():
    unary = np.array([1e30, 0.0])
    table = np.array([[[0.0, 0.0], [0.0, np.log(3.0)]]])
    marginals, *_ = pairwise_loopy_bp(unary, np.array([[0, 1]]), table)
    np.testing.assert_allclose(marginals, [1.0, 0.75], rtol=1e-14)  # y_0 = 1: P(y_1 = 1) = 3/4


def test_self_loops_are_refused():
    with pytest.raises(refimpl.InputError, match="self-loops"):
        pairwise_loopy_bp(np.zeros(2), np.array([[1, 1]]), np.zeros((1, 2, 2)))


def test_a_pair_listed_twice_is_one_factor_with_the_summed_table():
    rng = np.random.default_rng(3)
    unary, first, second = rng.standard_normal(3), rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    twice = pairwise_loopy_bp(unary, np.array([[0, 1], [1, 0], [1, 2]]), np.stack([first, second, first]))[0]
    once = pairwise_loopy_bp(unary, np.array([[0, 1], [1, 2]]), np.stack([first + second.T, first]))[0]
    np.testing.assert_allclose(twice, once, rtol=1e-14)
    np.testing.assert_allclose(
        once,
        _exact_marginals(unary, np.array([[0, 1], [1, 2]]), np.stack([first + second.T, first])),
        rtol=1e-10,
    )
