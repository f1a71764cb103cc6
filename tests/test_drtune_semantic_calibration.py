"""DR-Tune's semantic calibration: the official semantic_calibration, hand values, the scale
of the output, and the recorded one-member-class deviation."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import drtune_semantic_calibration
from refimpl_conformance.cases.regularizers.drtune import _normalize
from refimpl_conformance.cases.regularizers.drtune import official_calibration as _official_calibration


def _queues(rng, n=24, d=6, k=4):
    pre = rng.standard_normal((n, d)) + 0.5
    down = pre + 0.5 * rng.standard_normal((n, d))
    labels = np.repeat(np.arange(k), n // k)
    rng.shuffle(labels)
    head = rng.standard_normal((k, d))
    batch = 3.0 * rng.standard_normal((5, d))
    return pre, down, labels, head, batch


@pytest.mark.parametrize("rotate", [True, False])
def test_matches_the_official_semantic_calibration(rotate):
    pre, down, labels, head, batch = _queues(np.random.default_rng(0))
    out = drtune_semantic_calibration(pre, down, labels, head, batch, rotate=rotate)
    np.testing.assert_allclose(out, _official_calibration(pre, down, labels, head, batch, rotate), atol=1e-12)


def test_every_row_takes_the_batch_mean_norm():
    pre, down, labels, head, batch = _queues(np.random.default_rng(1))
    out = drtune_semantic_calibration(pre, down, labels, head, batch, rotate=True)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(batch, axis=1).mean(), rtol=1e-13)


def test_identical_queues_with_uniform_confidence_are_left_in_place():
    # down = pre and a zero head row (uniform weights): μ_down = μ_pre, no shift
    rng = np.random.default_rng(2)
    pre = rng.standard_normal((8, 3))
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    batch = np.array([[0.0, 2.0, 0.0]])
    out = drtune_semantic_calibration(pre, pre, labels, np.zeros((2, 3)), batch, rotate=False)
    np.testing.assert_allclose(out, 2.0 * _normalize(pre), atol=1e-14)
    # a class direction reweights the downstream centre towards its members: a shift appears
    head = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    moved = drtune_semantic_calibration(pre, pre, labels, head, batch, rotate=False)
    assert np.abs(moved[:4] - out[:4]).max() > 1e-3
    np.testing.assert_allclose(moved[4:], out[4:], atol=1e-14)


def test_confidence_weights_are_a_softmax_of_cosines():
    # one class of two rows, no rotation: q1 = e1 (cosine 1 with W = e1), q2 = e2 (cosine 0)
    pre = np.array([[1.0, 0.0], [1.0, 0.0]])
    down = np.array([[1.0, 0.0], [0.0, 1.0]])
    w1 = np.e / (np.e + 1.0)
    shifted = np.array([1.0, 0.0]) + (np.array([w1, 1.0 - w1]) - np.array([1.0, 0.0]))
    out = drtune_semantic_calibration(
        pre, down, np.array([0, 0]), np.array([[5.0, 0.0]]), np.ones((1, 2)), rotate=False
    )
    expected = np.sqrt(2.0) * shifted / np.linalg.norm(shifted)
    np.testing.assert_allclose(out, [expected, expected], rtol=1e-14)


def test_hand_example_and_empty_classes():
    pre = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    down = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    batch = np.array([[3.0, 4.0], [6.0, 8.0]])
    head = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # class 2 has no queue row
    out = drtune_semantic_calibration(pre, down, np.array([0, 1, 0]), head, batch, rotate=False)
    np.testing.assert_allclose(out, [[0.0, 7.5], [7.5, 0.0], [0.0, 7.5]], atol=1e-14)


def test_one_member_class_deviation_is_what_the_official_code_computes():
    deviation = next(
        d
        for d in refimpl.deviations("drtune_semantic_calibration")
        if d.name == "drtune-single-member-class-squeeze"
    )
    example = deviation.example
    pre, down, labels, head, batch = example.args
    official = _official_calibration(pre, down, labels, head, batch, rotate=False)
    np.testing.assert_allclose(official, example.official["calibrated"], atol=1e-5)
    out = drtune_semantic_calibration(*example.args, **example.kwargs)
    np.testing.assert_allclose(out, example.reference["calibrated"], atol=1e-14)
    # without the squeeze quirk the official loop is the reference
    fixed = _official_calibration(pre, down, labels, head, batch, rotate=False, squeeze_quirk=False)
    np.testing.assert_allclose(out, fixed, atol=1e-14)
