"""LoL: the comparative hinge, the ranking losses that feed it, and FLOPS — hand values and invariants."""

import itertools
import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import (
    flops_regularizer,
    lol_comparative_regularization,
    lol_passage_ranking_loss,
    lol_query_ranking_loss,
)


def _lol_and_gradient(L, **kwargs):
    lol, pullback = refimpl.vjp("lol_comparative_regularization", L, **kwargs)
    (g_L,) = pullback(np.array(1.0, dtype=L.dtype))
    return float(lol), g_L


def _official_pairwise_hinge(L, margin=0.0):
    """The official objective spelled out: effects −L, labels n..1, pairs with label_i > label_j."""
    effects, labels = -L, np.arange(L.shape[1], 0, -1)
    terms = [
        max(0.0, -(effects[q, i] - effects[q, j]) + margin)
        for q in range(L.shape[0])
        for i, j in itertools.product(range(L.shape[1]), repeat=2)
        if labels[i] - labels[j] > 0
    ]
    return sum(terms) / len(terms)


# -- lol_comparative_regularization ---------------------------------------------------------
def test_lol_matches_hand_computed_value_and_gradient():
    # pairs (i<j): 1−3 = −2, 1−2 = −1, 3−2 = +1 → only (1, 2) active; P = 3
    lol, g_L = _lol_and_gradient(np.array([[1.0, 3.0, 2.0]]))
    assert lol == pytest.approx(1 / 3, rel=1e-15)
    np.testing.assert_array_equal(g_L, [[0.0, 1 / 3, -1 / 3]])


def test_lol_is_one_mean_over_all_pairs_of_the_batch():
    # row 0 fully satisfied (0 active of 3), row 1 fully violated: sum = (1 + 2 + 1)/6
    L = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    lol, g_L = _lol_and_gradient(L)
    assert lol == pytest.approx(4 / 6, rel=1e-15)
    np.testing.assert_allclose(g_L, [[0, 0, 0], [2 / 6, 0, -2 / 6]], atol=1e-17)


def test_lol_matches_the_official_pairwise_hinge_formulation():
    rng = np.random.default_rng(0)
    for n, margin in [(2, 0.0), (3, 0.0), (4, 0.3)]:
        L = rng.gamma(2.0, 1.0, size=(5, n))
        lol = float(lol_comparative_regularization(L, margin=margin))
        assert lol == pytest.approx(_official_pairwise_hinge(L, margin), rel=1e-14)


def test_lol_reversed_column_order_turns_satisfied_pairs_into_violations():
    L = np.array([[0.5, 1.0, 2.5], [1.0, 1.5, 4.0]])  # losses grow as feedback shrinks: satisfied
    assert float(lol_comparative_regularization(L)) == 0.0
    reversed_lol, g_reversed = _lol_and_gradient(L[:, ::-1].copy())
    # every pair violated: the hinge of the reversed order is the mean absolute pair difference
    differences = [abs(row[i] - row[j]) for row in L for i, j in itertools.combinations(range(3), 2)]
    assert reversed_lol == pytest.approx(np.mean(differences), rel=1e-15)
    np.testing.assert_allclose(g_reversed, np.tile([2 / 6, 0, -2 / 6], (2, 1)), atol=1e-17)


def test_lol_exact_ties_have_zero_gradient_by_default_and_official_subgradient_with_flag():
    L = np.array([[2.0, 2.0, 2.0]])  # every pair a tie with m = 0
    lol, g_default = _lol_and_gradient(L)
    lol_official, g_official = _lol_and_gradient(L, tie_active=True)
    assert lol == lol_official == 0.0
    np.testing.assert_array_equal(g_default, [[0.0, 0.0, 0.0]])
    # margin_ranking_loss's clamp passes gradient at 0: pair (i, j) gives +1/P to i, −1/P to j
    np.testing.assert_allclose(g_official, [[2 / 3, 0.0, -2 / 3]], rtol=1e-15)


def test_lol_tie_flag_changes_nothing_away_from_ties():
    L = np.random.default_rng(1).uniform(0, 3, size=(4, 3))
    np.testing.assert_array_equal(_lol_and_gradient(L)[1], _lol_and_gradient(L, tie_active=True)[1])


def test_lol_of_one_revision_per_query_is_zero_with_zero_gradient():
    lol, g_L = _lol_and_gradient(np.array([[1.5], [0.2], [7.0]]))
    assert lol == 0.0
    np.testing.assert_array_equal(g_L, np.zeros((3, 1)))


def test_lol_margin_activates_nearly_satisfied_pairs():
    L = np.array([[1.0, 1.2]])  # satisfied by 0.2
    assert float(lol_comparative_regularization(L)) == 0.0
    assert float(lol_comparative_regularization(L, margin=0.5)) == pytest.approx(0.3, rel=1e-14)


def test_lol_is_invariant_under_a_common_shift_of_a_row():
    L = np.random.default_rng(2).uniform(0, 3, size=(3, 4))
    shifted = L + np.array([[10.0], [-1.0], [0.25]])
    assert float(lol_comparative_regularization(shifted)) == pytest.approx(
        float(lol_comparative_regularization(L)), rel=1e-12
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lol_keeps_the_input_dtype(dtype):
    lol, g_L = _lol_and_gradient(np.array([[3.0, 1.0]], dtype=dtype))
    assert lol == 2.0 and g_L.dtype == dtype


# -- lol_passage_ranking_loss ---------------------------------------------------------------
CORPUS = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]])


def _pr_and_gradients(queries, corpus, positives, g=None):
    pr, pullback = refimpl.vjp("lol_passage_ranking_loss", queries, corpus, positives)
    g = np.ones_like(pr) if g is None else g
    return pr, *pullback(g)


def test_passage_ranking_matches_hand_computed_values():
    # q = e1: S = [2, 1, 0, −1]; positives {0, 1}: label 1 (lower S), passage 0 masked
    pr = lol_passage_ranking_loss(np.array([[1.0, 0.0]]), CORPUS, np.array([[0, 1]]))
    expected = math.log(math.exp(1) + math.exp(0) + math.exp(-1)) - 1
    np.testing.assert_allclose(pr, [expected], rtol=1e-15)


def test_passage_ranking_second_positive_never_enters_the_softmax():
    queries, positives = np.array([[1.0, 0.0]]), np.array([[0, 1]])
    base, g_queries, g_corpus = _pr_and_gradients(queries, CORPUS, positives)
    moved = CORPUS.copy()
    moved[0] = [50.0, 3.0]  # the masked positive scores 50 now: still not a negative
    np.testing.assert_array_equal(lol_passage_ranking_loss(queries, moved, positives), base)
    np.testing.assert_array_equal(g_corpus[0], [0.0, 0.0])  # no gradient reaches it
    # as a negative (positives {1} only) it would dominate the softmax
    assert lol_passage_ranking_loss(queries, CORPUS, np.array([[1, -1]]))[0] > base[0] + 0.5


def test_passage_ranking_label_is_the_lowest_scoring_positive_and_its_gradient_is_pi_minus_one():
    queries, positives = np.array([[1.0, 0.0]]), np.array([[1, 0]])  # order in the row is irrelevant
    _, g_queries, g_corpus = _pr_and_gradients(queries, CORPUS, positives)
    scores = np.array([1.0, 0.0, -1.0])  # kept: passages 1 (label), 2, 3
    pi = np.exp(scores) / np.exp(scores).sum()
    np.testing.assert_allclose(g_corpus[1:, 0], pi - [1, 0, 0], rtol=1e-14)  # C̄_p = S̄[p]·q
    np.testing.assert_allclose(g_queries[0], (pi - [1, 0, 0]) @ CORPUS[1:], rtol=1e-14)


def test_passage_ranking_tie_between_positives_goes_to_the_lowest_passage_index():
    corpus = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # passages 0 and 2 score the same
    queries = np.array([[1.0, 0.2]])
    for positives in (np.array([[2, 0]]), np.array([[0, 2]])):
        _, _, g_corpus = _pr_and_gradients(queries, corpus, positives)
        assert g_corpus[0, 0] < 0 and np.all(g_corpus[2] == 0)  # 0 is the label, 2 masked


def test_passage_ranking_row_left_with_only_its_label_has_zero_loss_and_gradient():
    pr, g_queries, g_corpus = _pr_and_gradients(np.array([[1.0, 0.0]]), CORPUS, np.array([[0, 1, 2, 3]]))
    np.testing.assert_array_equal(pr, [0.0])
    np.testing.assert_array_equal(g_queries, 0.0)
    np.testing.assert_array_equal(g_corpus, 0.0)


def test_passage_ranking_stays_finite_for_large_similarities():
    queries = np.array([[400.0, 0.0]])
    pr, g_queries, _ = _pr_and_gradients(queries, CORPUS, np.array([[2]]))
    np.testing.assert_allclose(pr, [800.0], rtol=1e-15)  # log Σ exp ≈ 800 (passage 0), minus S = 0
    assert np.all(np.isfinite(g_queries))


def test_passage_ranking_refuses_a_query_without_positives():
    with pytest.raises(refimpl.InputError, match=r"^lol_passage_ranking_loss: argument 'positives'.*row 1"):
        lol_passage_ranking_loss(np.ones((2, 2)), CORPUS, np.array([[0, -1], [-1, -1]]))


# -- lol_query_ranking_loss ---------------------------------------------------------------
def _query_rows_by_hand(queries, corpus, rows, masked):
    """Mean over rows (label g, passage p) of −log softmax(S[:, p] with `masked` queries removed)[g]."""
    scores = queries @ corpus.T
    losses = []
    for (label, passage), hidden in zip(rows, masked, strict=True):
        keep = [j for j in range(len(queries)) if j not in hidden]
        column = scores[keep, passage]
        losses.append(math.log(np.exp(column).sum()) - scores[label, passage])
    return float(np.mean(losses))


QUERIES = np.random.default_rng(3).standard_normal((6, 3))
PASSAGES = np.random.default_rng(4).standard_normal((5, 3))


def test_query_ranking_masks_other_groups_sharing_a_positive():
    # groups {0, 1}, {2, 3}, {4, 5}; passage 2 is a positive of groups 0 and 1 (4 owners > n = 2)
    positives = np.array([[0, 2], [0, 2], [2, 3], [2, 3], [4, -1], [4, -1]])
    qr = float(lol_query_ranking_loss(QUERIES, PASSAGES, positives, n_revisions=2))
    rows = [(0, 0), (0, 2), (2, 2), (2, 3), (4, 4)]
    masked = [(), (2, 3), (0, 1), (), ()]  # the own group's other revision stays a competitor
    assert qr == pytest.approx(_query_rows_by_hand(QUERIES, PASSAGES, rows, masked), rel=1e-13)


def test_query_ranking_does_not_mask_when_at_most_n_queries_list_the_passage():
    # official count test: passage 2 listed by queries 0 and 2 only (2 ≤ n = 2) → no masking
    positives = np.array([[0, 2], [0, -1], [2, -1], [3, -1]])
    qr = float(lol_query_ranking_loss(QUERIES[:4], PASSAGES, positives, n_revisions=2))
    rows = [(0, 0), (0, 2), (2, 2)]
    assert qr == pytest.approx(_query_rows_by_hand(QUERIES[:4], PASSAGES, rows, [(), (), ()]), rel=1e-13)


def test_query_ranking_gradient_adds_rows_that_share_a_passage():
    positives = np.array([[1], [1], [1], [1]])  # two groups, one shared passage → two rows on column 1
    _, pullback = refimpl.vjp("lol_query_ranking_loss", QUERIES[:4], PASSAGES, positives, n_revisions=2)
    g_queries, g_corpus = pullback(np.array(1.0))
    scores = QUERIES[:4] @ PASSAGES[1]
    g_column = np.zeros(4)
    for label, kept in [(0, [0, 1]), (2, [2, 3])]:
        pi = np.exp(scores[kept]) / np.exp(scores[kept]).sum()
        g_column[kept] += (pi - (np.array(kept) == label)) / 2
    np.testing.assert_allclose(g_corpus[1], g_column @ QUERIES[:4], rtol=1e-13)
    np.testing.assert_array_equal(np.delete(g_corpus, 1, axis=0), 0.0)
    np.testing.assert_allclose(g_queries, np.outer(g_column, PASSAGES[1]), rtol=1e-13)


def test_query_ranking_refuses_a_batch_that_is_not_whole_groups():
    with pytest.raises(refimpl.InputError, match=r"^lol_query_ranking_loss: argument 'queries'.*Q = 3"):
        lol_query_ranking_loss(QUERIES[:3], PASSAGES, np.array([[0], [0], [1]]), n_revisions=2)


# -- the comparative term fed by the passage-ranking losses -----------------------------------
def test_comparative_term_of_one_revision_per_query_is_zero():
    positives = np.array([[0], [1], [2]])
    pr = lol_passage_ranking_loss(QUERIES[:3], PASSAGES, positives)
    assert float(lol_comparative_regularization(pr.reshape(3, 1))) == 0.0


# -- flops_regularizer ------------------------------------------------------------------------
def test_flops_and_l1_match_hand_computed_values_and_gradients():
    queries = np.array([[1.0, 0.0], [-3.0, 2.0]])  # a = [2, 1]: flops 5, l1 (1 + 5)/2 = 3
    (flops, l1), pullback = refimpl.vjp("flops_regularizer", queries)
    assert (float(flops), float(l1)) == (5.0, 3.0)
    (g_flops,) = pullback((np.array(1.0), None))
    np.testing.assert_array_equal(g_flops, [[2.0, 0.0], [-2.0, 1.0]])  # 2 a_j sign(q)/Q; sign(0) = 0
    (g_l1,) = pullback((None, np.array(1.0)))
    np.testing.assert_array_equal(g_l1, [[0.5, 0.0], [-0.5, 0.5]])


def test_flops_of_one_query_is_its_squared_l2_norm_and_l1_its_l1_norm():
    query = np.array([[0.5, -2.0, 0.0, 1.5]])
    flops, l1 = flops_regularizer(query)
    assert float(flops) == pytest.approx(0.25 + 4 + 2.25, rel=1e-15)
    assert float(l1) == 4.0


def test_flops_is_smaller_for_the_same_mass_spread_over_more_terms():
    concentrated = np.array([[2.0, 0.0], [2.0, 0.0]])
    spread = np.array([[2.0, 0.0], [0.0, 2.0]])  # same L1, terms used by different queries
    assert float(flops_regularizer(spread)[0]) < float(flops_regularizer(concentrated)[0])
    assert float(flops_regularizer(spread)[1]) == float(flops_regularizer(concentrated)[1])
