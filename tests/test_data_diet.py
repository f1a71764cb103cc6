"""Data Diet scores (EL2N, last-layer GraNd, margin), pruning by score, and the batch-streaming helper."""

from __future__ import annotations

import math

import numpy as np
import pytest

import refimpl
from refimpl import InputError
from refimpl.data_selection import (
    el2n_score,
    grand_score_last_layer,
    margin_score,
    score_based_pruning,
    score_in_batches,
)

BACKENDS = ["numpy", "numba", "cupy[host]"]


def run(backend, name, *args, **kwargs):
    """The op through one backend (cupy[host]: the CuPy array logic on NumPy arrays)."""
    if backend == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend().get(name)(*args, **kwargs)
    return refimpl.backend(backend).get(name)(*args, **kwargs)


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.standard_normal((3, 8, 5)) * 2.0, rng.integers(0, 5, size=8)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- EL2N ------------------------------------------------------------------------------------------------
def test_el2n_by_hand():
    z = np.log(np.array([[[1.0, 3.0], [1.0, 1.0]]]))  # p = [1/4, 3/4] and [1/2, 1/2]
    np.testing.assert_allclose(
        el2n_score(z, np.array([0, 1])), [0.75 * math.sqrt(2), 0.5 * math.sqrt(2)], rtol=1e-15
    )
    np.testing.assert_allclose(el2n_score(z, np.array([0, 1]), ord=1), [1.5, 1.0], rtol=1e-15)


def test_el2n_is_the_mean_over_runs_of_the_official_norm(logits):
    z, y = logits
    one_hot = np.eye(5)[y]
    for order in (1, 2):
        official = np.linalg.norm(softmax(z) - one_hot, ord=order, axis=-1)  # get_lord_error_fn, per run
        np.testing.assert_allclose(el2n_score(z, y, ord=order), official.mean(axis=0), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_el2n_lies_in_zero_to_root_two(backend):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2, 200, 6)) * rng.choice([0.1, 5.0, 100.0], size=(2, 200, 1))
    y = rng.integers(0, 6, size=200)
    scores = run(backend, "el2n_score", z, y)
    assert scores.min() >= 0 and scores.max() <= math.sqrt(2)
    # a confidently wrong example reaches √2, a fitted one 0
    extreme = np.array([[[1e4, -1e4, -1e4], [-1e4, 1e4, -1e4]]])
    np.testing.assert_allclose(run(backend, "el2n_score", extreme, np.array([1, 1])), [math.sqrt(2), 0.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_el2n_keeps_the_digits_of_a_nearly_fitted_example(backend):
    z = np.array([[[40.0, 0.0, 0.0]]])  # 1 − p_y = 2e^{−40}/(1 + 2e^{−40}) ≈ 8.5e-18
    p_other = math.exp(-40.0) / (1 + 2 * math.exp(-40.0))
    expected = math.sqrt((2 * p_other) ** 2 + 2 * p_other**2)  # e = [−2p, p, p]
    np.testing.assert_allclose(run(backend, "el2n_score", z, np.array([0])), [expected], rtol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_el2n_gradient_matches_finite_differences_away_from_saturation(logits, backend):
    z, y = logits
    g = np.linspace(-1.0, 2.0, 8)
    for order in (1, 2):
        _, pullback = refimpl.vjp("el2n_score", z, y, ord=order, backend=backend)
        (g_z,) = pullback(g)
        step = 1e-6
        for index in [(0, 0, 0), (1, 3, 2), (2, 7, 4), (0, 5, int(y[5]))]:
            plus, minus = z.copy(), z.copy()
            plus[index] += step
            minus[index] -= step
            numeric = g @ (el2n_score(plus, y, ord=order) - el2n_score(minus, y, ord=order)) / (2 * step)
            np.testing.assert_allclose(g_z[index], numeric, rtol=1e-6, atol=1e-10)


def test_el2n_gradient_is_shift_invariant_and_zero_when_saturated(logits):
    z, y = logits
    _, pullback = refimpl.vjp(el2n_score, z, y)
    (g_z,) = pullback(np.ones(8))
    np.testing.assert_allclose(g_z.sum(axis=-1), 0.0, atol=1e-15)  # softmax: shifting a row changes nothing
    saturated = np.array([[[1e4, -1e4], [-1e4, 1e4]]], dtype=np.float32)
    _, pullback = refimpl.vjp(el2n_score, saturated, np.array([0, 0]))
    assert np.all(pullback(np.ones(2, dtype=np.float32))[0] == 0)  # e = 0 or p one-hot: defined as 0


# -- GraNd (last layer) -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_grand_equals_the_norm_of_the_explicit_outer_product_gradient(backend):
    rng = np.random.default_rng(2)
    R, n, K, H = 2, 5, 4, 3
    z, h = rng.standard_normal((R, n, K)) * 2, rng.standard_normal((R, n, H)) * 3
    y = rng.integers(0, K, size=n)
    for bias in (False, True):
        norms = np.empty((R, n))
        for r in range(R):
            for i in range(n):
                g_logits = softmax(z[r, i]) - np.eye(K)[y[i]]  # ∂CE/∂z of z = W h + c
                g_weight = np.outer(g_logits, h[r, i])
                flat = np.concatenate([g_weight.ravel(), g_logits]) if bias else g_weight.ravel()
                norms[r, i] = np.linalg.norm(flat)
        np.testing.assert_allclose(
            run(backend, "grand_score_last_layer", z, y, h, bias=bias), norms.mean(axis=0), rtol=1e-12
        )


def test_grand_by_hand_and_with_huge_float32_features():
    z, y = np.log(np.array([[[1.0, 3.0]]])), np.array([0])
    h = np.array([[[3.0, 4.0]]])
    np.testing.assert_allclose(
        grand_score_last_layer(z, y, h, bias=False), [0.75 * math.sqrt(2) * 5], rtol=1e-15
    )
    np.testing.assert_allclose(
        grand_score_last_layer(z, y, h), [0.75 * math.sqrt(2) * math.sqrt(26)], rtol=1e-15
    )
    big = (h * 1e25).astype(np.float32)  # ‖h‖² = 2.5e51 overflows float32
    for backend in BACKENDS:
        score = run(backend, "grand_score_last_layer", z.astype(np.float32), y, big)
        np.testing.assert_allclose(score, [0.75 * math.sqrt(2) * 5e25], rtol=1e-6)


# -- margin -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_margin_matches_the_official_formulas(backend, logits):
    z, y = logits
    p = softmax(z)
    correct = np.eye(5, dtype=bool)[y]
    wrong = p[:, ~correct].reshape(3, 8, 4)  # get_margin_error: P[~correct] − P[correct]
    differences = wrong - p[:, correct].reshape(3, 8, 1)
    np.testing.assert_allclose(run(backend, "margin_score", z, y), differences.max(-1).mean(0), rtol=1e-12)
    np.testing.assert_allclose(
        run(backend, "margin_score", z, y, kind="sum"), differences.sum(-1).mean(0), rtol=1e-11, atol=1e-15
    )


def test_margin_by_hand_and_its_range():
    z = np.log(np.array([[[1.0, 3.0, 4.0]]]))  # p = [1/8, 3/8, 1/2]
    np.testing.assert_allclose(margin_score(z, np.array([1])), [0.125], rtol=1e-14)
    np.testing.assert_allclose(margin_score(z, np.array([2])), [-0.125], rtol=1e-14)
    np.testing.assert_allclose(margin_score(z, np.array([1]), kind="sum"), [-0.125], rtol=1e-14)
    saturated = np.array([[[1e4, -1e4, -1e4]]])
    np.testing.assert_allclose(margin_score(saturated, np.array([0])), [-1.0])  # fitted: the lowest margin
    np.testing.assert_allclose(margin_score(saturated, np.array([1])), [1.0])  # confidently wrong
    with pytest.raises(InputError, match="K >= 2"):
        margin_score(np.zeros((1, 2, 1)), np.array([0, 0]))


# -- pruning ----------------------------------------------------------------------------------------------
def test_pruning_keeps_the_highest_after_the_offset_ties_lowest_index_first():
    s = np.array([0.3, 0.9, 0.1, 0.9, 0.5])
    np.testing.assert_array_equal(score_based_pruning(s, size=2), [1, 3])
    np.testing.assert_array_equal(score_based_pruning(s, size=2, offset=1), [3, 4])  # 1 before 3: tie
    np.testing.assert_array_equal(score_based_pruning(s, size=1, offset=0), [1])
    np.testing.assert_array_equal(score_based_pruning(s, size=0, offset=5), np.zeros(0, dtype=np.int64))
    tied = np.zeros(6)
    np.testing.assert_array_equal(score_based_pruning(tied, size=3, offset=2), [2, 3, 4])


def test_official_offset_counts_from_the_lowest_score_as_the_official_slice():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal(50)  # no ties: the official (unstable) argsort is then unambiguous
    for size, offset in [(10, 0), (10, 5), (25, 25), (0, 3)]:
        official = np.sort(scores.argsort()[offset : offset + size])
        np.testing.assert_array_equal(
            score_based_pruning(scores, size=size, offset=offset, official_offset=True), official
        )
        # and the paper's window with offset n − offset − size is the same set
        np.testing.assert_array_equal(
            score_based_pruning(scores, size=size, offset=50 - offset - size), official
        )
    # keep_max_scores of the official code: the paper's rule with offset 0
    np.testing.assert_array_equal(score_based_pruning(scores, size=7), np.sort(scores.argsort()[-7:]))


def test_official_offset_ties_lowest_index_first_in_ascending_order():
    s = np.array([0.5, 0.2, 0.5, 0.2, 0.5, 0.9])  # ascending: 1, 3, 0, 2, 4, 5
    np.testing.assert_array_equal(score_based_pruning(s, size=3, offset=1, official_offset=True), [0, 2, 3])


def test_pruning_refuses_a_window_beyond_the_ranking():
    with pytest.raises(InputError, match=r"size \+ offset <= n = 3"):
        score_based_pruning(np.array([0.1, 0.2, 0.3]), size=2, offset=2)


# -- streaming ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [None, "numba"])
def test_score_in_batches_equals_the_one_shot_call(backend):
    rng = np.random.default_rng(4)
    z, h = rng.standard_normal((2, 23, 6)) * 3, rng.standard_normal((2, 23, 4))
    y = rng.integers(0, 6, size=23)
    bounds = [0, 5, 6, 17, 23]
    slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    one_shot = {
        "el2n_score": el2n_score(z, y, ord=1),
        "margin_score": margin_score(z, y),
        "grand_score_last_layer": grand_score_last_layer(z, y, h),
    }
    streamed = {
        "el2n_score": score_in_batches(
            "el2n_score", ((z[:, s], y[s]) for s in slices), backend=backend, ord=1
        ),
        "margin_score": score_in_batches("margin_score", ((z[:, s], y[s]) for s in slices), backend=backend),
        "grand_score_last_layer": score_in_batches(
            "grand_score_last_layer", ((z[:, s], y[s], h[:, s]) for s in slices), backend=backend
        ),
    }
    for name, expected in one_shot.items():
        assert streamed[name].shape == (23,)
        if backend is None:
            np.testing.assert_array_equal(streamed[name], expected)  # same arithmetic, row by row
        else:
            np.testing.assert_allclose(streamed[name], expected, rtol=1e-12, atol=1e-15)


def test_score_in_batches_refuses_other_ops_and_no_batches():
    with pytest.raises(InputError, match="one of el2n_score"):
        score_in_batches("score_based_pruning", [])
    with pytest.raises(InputError, match="empty"):
        score_in_batches("el2n_score", iter(()))
