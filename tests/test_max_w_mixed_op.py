"""sharpDARTS Max-W mixed op: the strongest op at weight 1, ties, and the official formula."""

import numpy as np

import refimpl
from refimpl.layers import max_w_mixed_op


def _inputs(seed=0, shape=(3, 5, 4)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal(shape[:-1])


def _official_mixed_op(outputs, alpha, detach_max=False):
    """MixedOp.forward with weighting_algorithm='max_w' (cnn/model_search.py), transcribed in
    NumPy for one mixed op: w = softmax(α); sum((1. − max_w + w)·op(x)); and its gradient as
    PyTorch's autograd gives it (torch.max splits its gradient evenly over ties; detached in
    MultiChannelNetwork.forward)."""
    w = np.exp(alpha - alpha.max()) / np.exp(alpha - alpha.max()).sum()
    max_w = np.max(w)
    y = sum((1.0 - max_w + w[i]) * outputs[i] for i in range(len(w)))
    return y, w, max_w


def test_max_w_mixed_op_matches_the_official_formula():
    outputs, alpha = _inputs()
    y = max_w_mixed_op(outputs, alpha)
    for r in range(outputs.shape[0]):
        official, _, _ = _official_mixed_op(outputs[r], alpha[r])
        np.testing.assert_allclose(y[r], official, rtol=1e-14, atol=1e-14)


def test_max_w_mixed_op_strongest_op_has_weight_exactly_one():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(2, 9))
        alpha = rng.standard_normal(n) * 3
        best = int(np.argmax(alpha))
        outputs = np.zeros((n, 1))
        outputs[best, 0] = 1.0  # y = the best op's coefficient
        assert max_w_mixed_op(outputs, alpha)[0] == 1.0
        others = np.ones((n, 1))
        others[best, 0] = 0.0
        y_others = max_w_mixed_op(others, alpha)[0]
        w = np.exp(alpha - alpha.max()) / np.exp(alpha - alpha.max()).sum()
        np.testing.assert_allclose(y_others, sum(1 - w.max() + w[i] for i in range(n) if i != best))


def test_max_w_mixed_op_alpha_gradient_matches_finite_differences_and_sums_to_zero():
    outputs, alpha = _inputs(2, (5, 3))
    g_y = np.random.default_rng(3).standard_normal(3)
    _, pullback = refimpl.vjp(max_w_mixed_op, outputs, alpha)
    g_outputs, g_alpha = pullback(g_y)
    step = 1e-6
    for i in range(5):
        e = np.zeros(5)
        e[i] = step
        fd = (max_w_mixed_op(outputs, alpha + e) - max_w_mixed_op(outputs, alpha - e)) @ g_y / (2 * step)
        np.testing.assert_allclose(g_alpha[i], fd, rtol=1e-6, atol=1e-9)
    assert abs(g_alpha.sum()) < 1e-12
    w = np.exp(alpha - alpha.max()) / np.exp(alpha - alpha.max()).sum()
    np.testing.assert_allclose(g_outputs, (1 - (w.max() - w))[:, None] * g_y[None, :])


def test_max_w_mixed_op_ties_split_the_max_gradient_evenly():
    # three of four ops tied: w = (e, e, e, 1)/(3e + 1); s_i = ⟨ȳ, O_i⟩ with ȳ = 1, D = 1
    alpha = np.array([1.0, 1.0, 1.0, 0.0])
    outputs = np.array([[1.0], [2.0], [4.0], [8.0]])
    _, pullback = refimpl.vjp(max_w_mixed_op, outputs, alpha)
    _, g_alpha = pullback(np.ones(1))
    w = np.array([np.e, np.e, np.e, 1.0]) / (3 * np.e + 1)
    scores = outputs[:, 0]
    g_w = scores - np.array([1, 1, 1, 0]) / 3 * scores.sum()
    np.testing.assert_allclose(g_alpha, w * (g_w - w @ g_w), rtol=1e-13)
    # each tied op alone, the max's gradient on it: the average of the three one-sided derivatives
    one_sided = [scores - np.eye(4)[k] * scores.sum() for k in range(3)]
    np.testing.assert_allclose(g_w, np.mean(one_sided, axis=0), rtol=1e-13)


def test_max_w_mixed_op_detached_max_is_the_recorded_convention():
    (record,) = refimpl.deviations("max_w_mixed_op")
    outputs, alpha = record.example.args
    _, w, _ = _official_mixed_op(outputs, alpha)
    scores = outputs[:, 0]  # ȳ = 1
    detached = w * (scores - w @ scores)  # the official MultiChannelNetwork gradient
    np.testing.assert_allclose(detached, record.example.official["cotangent of 'alpha'"])
    _, pullback = refimpl.vjp(max_w_mixed_op, outputs, alpha)
    np.testing.assert_allclose(pullback(np.ones(1))[1], record.example.reference["cotangent of 'alpha'"])


def test_max_w_mixed_op_batch_dims_are_independent_mixed_ops():
    outputs, alpha = _inputs(4, (2, 3, 4, 5))
    y = max_w_mixed_op(outputs, alpha)
    assert y.shape == (2, 3, 5)
    np.testing.assert_allclose(y[1, 2], max_w_mixed_op(outputs[1, 2], alpha[1, 2]))
