"""UNPG's box-and-whisker filter: hand values, index quartiles (not percentiles), the official
algorithm transcribed, the edge cases of the catalog and the invariants of the filter."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import box_and_whisker_filter

# unit rows with exact dot products: all labels distinct gives l = 10 negatives, sorted
# −1 (0,2), −0.8 (2,4), −0.6 (2,3), 0 (0,1), 0 (1,2), 0.6 (0,3), 0.6 (1,4), 0.8 (0,4), 0.8 (1,3), 0.96 (3,4)
HAND = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
HAND_SORTED = np.array([-1.0, -0.8, -0.6, 0.0, 0.0, 0.6, 0.6, 0.8, 0.8, 0.96])


def official_box_and_whisker(similarities, wisk):
    """recognition/models/build.py, box_and_whisker_algorithm, in NumPy (torch.sort -> np.sort)."""
    length = similarities.shape[0]
    sorted_x = np.sort(similarities)
    lower_quartile = sorted_x[int(0.25 * length)]
    upper_quartile = sorted_x[int(0.75 * length)]
    iqr = upper_quartile - lower_quartile
    minimum = lower_quartile - wisk * iqr
    maximum = upper_quartile + wisk * iqr
    return sorted_x[np.logical_and(sorted_x <= maximum, sorted_x >= minimum)]


def official_negatives(features, labels):
    """recognition/models/build.py, F.normalize then convert_label_to_similarity's negatives."""
    normed = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    similarity = normed @ normed.T
    negative = np.triu(labels[:, None] != labels[None, :], k=1)
    return similarity.reshape(-1)[negative.reshape(-1)]


@pytest.mark.parametrize(
    ("w", "expected"),
    [
        (0.0, HAND_SORTED[2:9]),  # fences [Q1, Q3] = [−0.6, 0.8]: both quartiles stay
        (0.25, HAND_SORTED[1:]),  # fences [−0.95, 1.15]: −1 goes
        (1.5, HAND_SORTED),  # fences [−2.7, 2.9]
    ],
)
def test_hand_example_keeps_the_values_between_the_fences(w, expected):
    kept, pairs = box_and_whisker_filter(HAND, np.arange(5), w=w)
    np.testing.assert_allclose(kept, expected, rtol=0, atol=1e-15)
    assert pairs.dtype == np.int64 and pairs.shape == (expected.size, 2)


def test_pairs_name_the_kept_similarities_in_order_with_ties_in_row_major_order():
    kept, pairs = box_and_whisker_filter(HAND, np.arange(5), w=0.25)
    np.testing.assert_array_equal(
        pairs, [[2, 4], [2, 3], [0, 1], [1, 2], [0, 3], [1, 4], [0, 4], [1, 3], [3, 4]]
    )
    np.testing.assert_allclose(kept, (HAND[pairs[:, 0]] * HAND[pairs[:, 1]]).sum(1), atol=1e-15)


def test_quartiles_are_elements_by_index_not_interpolated_percentiles():
    # l = 10: Q1 = sorted[2] = −0.6 and Q3 = sorted[7] = 0.8; np.percentile's linear
    # interpolation gives −0.45 and 0.75, whose w = 0 fences would keep only 4 values
    kept, _ = box_and_whisker_filter(HAND, np.arange(5), w=0.0)
    q1, q3 = np.percentile(HAND_SORTED, [25, 75])
    np.testing.assert_allclose([q1, q3], [-0.45, 0.75], atol=1e-15)
    assert kept.size == 7
    assert ((HAND_SORTED >= q1) & (HAND_SORTED <= q3)).sum() == 4
    assert kept.min() == pytest.approx(-0.6, abs=1e-15) and kept.max() == pytest.approx(0.8, abs=1e-15)


def test_pairs_with_equal_labels_are_not_candidates():
    # labels [0, 1, 0, 2, 2] remove (0,2) = −1 and (3,4) = 0.96: l = 8, Q1 = sorted[2] = 0, Q3 = 0.8
    kept, pairs = box_and_whisker_filter(HAND, np.array([0, 1, 0, 2, 2]), w=0.0)
    np.testing.assert_allclose(kept, [0.0, 0.0, 0.6, 0.6, 0.8, 0.8], atol=1e-15)
    np.testing.assert_array_equal(pairs, [[0, 1], [1, 2], [0, 3], [1, 4], [0, 4], [1, 3]])


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_official_algorithm_on_random_batches(seed):
    rng = np.random.default_rng(seed)
    B, D, K = 12, 6, 4
    labels = rng.integers(0, K, size=B)
    features = rng.standard_normal((K, D))[labels] + 0.7 * rng.standard_normal((B, D))
    features[5] = features[1] + 1e-3 * rng.standard_normal(D)  # a noisy label: a near-duplicate
    labels[5] = labels[1] + 1
    features *= 10 ** rng.uniform(-2, 2, size=(B, 1))
    for w in (0.0, 0.5, 1.0, 1.5):
        kept, pairs = box_and_whisker_filter(features, labels, w=w)
        expected = official_box_and_whisker(official_negatives(features, labels), w)
        np.testing.assert_allclose(kept, expected, rtol=0, atol=1e-14)
        assert np.all(pairs[:, 0] < pairs[:, 1]) and np.all(labels[pairs[:, 0]] != labels[pairs[:, 1]])


def test_a_near_duplicate_across_identities_is_dropped_at_the_default_whisker():
    rng = np.random.default_rng(11)
    features = rng.standard_normal((8, 64))  # high dimension: negatives concentrate near 0
    features[7] = features[2] + 1e-3 * rng.standard_normal(64)  # the same face under another label
    kept, pairs = box_and_whisker_filter(features, np.arange(8))
    all_kept, _ = box_and_whisker_filter(features, np.arange(8), w=100.0)
    assert all_kept.size == 28 and all_kept[-1] > 0.999
    assert [2, 7] not in pairs.tolist()
    assert kept.size < 28 and kept.max() < 0.99


def test_default_whisker_is_the_official_config_value():
    # recognition/data/head.zoo.yaml: `unpg: wisk: 1.5` (the UNPG module's own 1.0 is overridden)
    rng = np.random.default_rng(3)
    features, labels = rng.standard_normal((10, 4)), rng.integers(0, 3, size=10)
    for got, want in zip(
        box_and_whisker_filter(features, labels), box_and_whisker_filter(features, labels, w=1.5), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert box_and_whisker_filter.signature.parameters["w"].default == 1.5


@pytest.mark.parametrize(
    ("features", "labels"),
    [(HAND, np.zeros(5, dtype=np.int64)), (np.array([[0.3, -0.4]]), np.array([2]))],
    ids=["one identity", "B = 1"],
)
def test_no_negative_pair_gives_empty_outputs(features, labels):
    kept, pairs = box_and_whisker_filter(features, labels)
    assert kept.shape == (0,) and kept.dtype == np.float64
    assert pairs.shape == (0, 2) and pairs.dtype == np.int64


def test_one_negative_pair_is_kept():
    kept, pairs = box_and_whisker_filter(np.array([[2.0, 0.0], [3.0, 4.0]]), np.array([0, 1]), w=0.0)
    np.testing.assert_allclose(kept, [0.6], atol=1e-15)
    np.testing.assert_array_equal(pairs, [[0, 1]])


def test_zero_iqr_drops_every_value_off_the_box():
    # 7 equal rows and one orthogonal, all labels distinct: 21 ones and 7 zeros, Q1 = sorted[7] = 1
    features = np.array([[1.0, 0.0]] * 7 + [[0.0, 1.0]])
    kept, pairs = box_and_whisker_filter(features, np.arange(8), w=1000.0)
    np.testing.assert_array_equal(kept, np.ones(21))
    assert 7 not in pairs


def test_result_depends_only_on_the_directions_of_the_rows():
    rng = np.random.default_rng(5)
    features, labels = rng.standard_normal((9, 3)), rng.integers(0, 3, size=9)
    scales = 10.0 ** rng.choice([-25, -3, 0, 4, 25], size=(9, 1))
    for dtype in (np.float64, np.float32):
        base_kept, base_pairs = box_and_whisker_filter(features.astype(dtype), labels, w=0.5)
        kept, pairs = box_and_whisker_filter((features * scales).astype(dtype), labels, w=0.5)
        assert kept.dtype == dtype
        np.testing.assert_allclose(kept, base_kept, rtol=0, atol=8 * np.finfo(dtype).eps)
        np.testing.assert_array_equal(pairs, base_pairs)


def test_permuting_the_batch_keeps_the_same_similarities():
    rng = np.random.default_rng(8)
    features, labels = rng.standard_normal((10, 4)), rng.integers(0, 4, size=10)
    kept, pairs = box_and_whisker_filter(features, labels, w=0.3)
    order = rng.permutation(10)
    kept_permuted, pairs_permuted = box_and_whisker_filter(features[order], labels[order], w=0.3)
    np.testing.assert_allclose(kept_permuted, kept, rtol=0, atol=1e-15)
    as_sets = {frozenset(p) for p in order[pairs_permuted].tolist()}
    assert as_sets == {frozenset(p) for p in pairs.tolist()}


def test_a_larger_whisker_keeps_a_superset():
    rng = np.random.default_rng(2)
    features, labels = rng.standard_normal((15, 3)), rng.integers(0, 5, size=15)
    previous = set()
    for w in (0.0, 0.1, 0.5, 1.5, 10.0):
        _, pairs = box_and_whisker_filter(features, labels, w=w)
        current = {tuple(p) for p in pairs.tolist()}
        assert previous <= current
        previous = current


@pytest.mark.parametrize(
    ("features", "labels", "kwargs", "argument"),
    [
        (np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([0, 1]), {}, "x"),
        (HAND, np.arange(5), {"w": -0.5}, "w"),
        (HAND, np.array([0, -1, 2, 3, 4]), {}, "y"),
        (HAND, np.arange(4), {}, "y"),
        (HAND.astype(np.int64), np.arange(5), {}, "x"),
    ],
)
def test_bad_input_raises_input_error_naming_the_argument(features, labels, kwargs, argument):
    with pytest.raises(refimpl.InputError, match=rf"^box_and_whisker_filter: argument '{argument}'"):
        box_and_whisker_filter(features, labels, **kwargs)


def test_a_zero_row_is_refused_with_its_index():
    features = HAND.copy()
    features[3] = 0.0
    with pytest.raises(refimpl.InputError, match="row 3 is all zeros"):
        box_and_whisker_filter(features, np.arange(5))
