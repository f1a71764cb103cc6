"""Loki: hand-computed scores on a path tree, the 0/1-metric reduction to argmax, the Fréchet
mean by exhaustive search, the VJP, and the fast backends."""

import numpy as np
import pytest

import refimpl
from refimpl.other import loki_predict, loki_scores

# a path tree a − m − b − c (labels 0..3), observed leaves a, b, c (classes 0..2)
PATH = np.array([[0.0, 1.0, 2.0, 3.0], [2.0, 1.0, 0.0, 1.0], [3.0, 2.0, 1.0, 0.0]])


def test_scores_match_hand_computed_values():
    s = loki_scores(np.array([[0.5, 0.0, 0.5], [0.2, 0.3, 0.5]]), PATH)
    # row 1: −(0.2·d(a,y)² + 0.3·d(b,y)² + 0.5·d(c,y)²)
    expected = [[-4.5, -2.5, -2.5, -4.5], [-(1.2 + 4.5), -(0.2 + 0.3 + 2.0), -(0.8 + 0.5), -(1.8 + 0.3)]]
    np.testing.assert_allclose(s, expected, rtol=1e-15)


def test_predict_picks_an_unobserved_inner_node_and_breaks_ties_low():
    # equal mass on a and c: m and b tie at −2.5 (m is label 1); mass on c only: c
    np.testing.assert_array_equal(loki_predict(np.array([[0.5, 0.0, 0.5], [0.0, 0.0, 1.0]]), PATH), [1, 3])


def test_zero_one_metric_reduces_to_argmax():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), size=200)
    np.testing.assert_array_equal(loki_predict(probs, 1.0 - np.eye(6)), np.argmax(probs, axis=1))
    # s_y = P_y − Σ_i P_i
    np.testing.assert_allclose(loki_scores(probs, 1.0 - np.eye(6)), probs - 1.0, atol=1e-15)


def test_predict_is_the_frechet_mean_by_exhaustive_search():
    rng = np.random.default_rng(1)
    points = rng.standard_normal((9, 2))
    distances = np.linalg.norm(points[:4, None] - points[None], axis=-1)  # 4 observed of 9 labels
    probs = rng.dirichlet(np.ones(4), size=50)
    objective = np.array(
        [[sum(p[i] * distances[i, y] ** 2 for i in range(4)) for y in range(9)] for p in probs]
    )
    np.testing.assert_array_equal(loki_predict(probs, distances), objective.argmin(axis=1))


def test_scores_vjp_is_minus_cotangent_times_squared_distances():
    rng = np.random.default_rng(2)
    probs, distances = rng.dirichlet(np.ones(3), size=4), rng.uniform(0, 3, size=(3, 5))
    g = rng.standard_normal((4, 5))
    _, pullback = refimpl.vjp(loki_scores, probs, distances)
    (g_probs,) = pullback(g)
    np.testing.assert_allclose(g_probs, -g @ (distances**2).T, rtol=1e-14)
    # finite differences: s is linear in P, so a central difference is exact up to rounding
    e = np.zeros_like(probs)
    e[1, 2] = 1e-3
    fd = ((loki_scores(probs + e, distances) - loki_scores(probs - e, distances)) * g).sum() / 2e-3
    np.testing.assert_allclose(g_probs[1, 2], fd, rtol=1e-9)


def test_predict_is_invariant_to_scaling_probabilities_and_distances():
    rng = np.random.default_rng(3)
    probs, distances = rng.dirichlet(np.ones(3), size=30), rng.uniform(0, 2, size=(3, 6))
    base = loki_predict(probs, distances)
    np.testing.assert_array_equal(loki_predict(probs * 7.0, distances), base)
    np.testing.assert_array_equal(loki_predict(probs, distances * 3.0), base)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_backends_agree_with_the_reference(backend):
    from refimpl_cupy import host_backend

    fast = (host_backend() if backend == "cupy[host]" else refimpl.backend(backend)).get("loki_scores")
    rng = np.random.default_rng(4)
    probs, distances = rng.dirichlet(np.ones(5), size=7), rng.uniform(0, 4, size=(5, 11))
    for dtype, rtol in [(np.float64, 1e-13), (np.float32, 1e-5)]:
        got = fast(probs.astype(dtype), distances.astype(dtype))
        assert got.dtype == dtype
        np.testing.assert_allclose(got, loki_scores(probs.astype(dtype), distances.astype(dtype)), rtol=rtol)


@pytest.mark.parametrize(
    ("probs", "distances", "argument"),
    [
        (np.array([[1.5, -0.5]]), PATH[:2], "P"),
        (np.array([[0.5, 0.5]]), -PATH[:2], "D"),
        (np.array([[0.5, 0.5, 0.0]]), PATH[:2], "D"),
    ],
)
@pytest.mark.parametrize("op", [loki_scores, loki_predict])
def test_bad_input_raises_input_error(op, probs, distances, argument):
    with pytest.raises(refimpl.InputError, match=rf"^{op.name}: argument '{argument}'"):
        op(probs, distances)


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_predict_survives_float32_distances_whose_squares_overflow_or_underflow(scale):
    probs = np.array([[0.5, 0.0, 0.5], [0.0, 0.0, 1.0], [0.1, 0.8, 0.1]], np.float32)
    got = loki_predict(probs, (PATH * scale).astype(np.float32))
    np.testing.assert_array_equal(got, [1, 3, 2])
