"""UNPG loss: the official pipeline, hand values, the margins, the fixed kept set, invariants."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import box_and_whisker_filter, unpg_loss


def _official_unpg(x, weight, y, *, head, s, m, wisk):
    """Jung-Jun-Uk/UNPG, transcribed in NumPy: ``head.py`` (ArcFace/CosFace, UNPG.forward) and
    ``build.py`` (convert_label_to_similarity, box_and_whisker_algorithm, HeadAndLoss.forward,
    one GPU); nn.CrossEntropyLoss with the mean."""
    x_hat = x / np.linalg.norm(x, axis=1, keepdims=True)
    w_hat = weight / np.linalg.norm(weight, axis=1, keepdims=True)
    cosine = x_hat @ w_hat.T
    one_hot = np.zeros_like(cosine)
    one_hot[np.arange(len(y)), y] = 1
    if head == "cosface":
        cosine = cosine - one_hot * m
    else:
        cosine = np.cos(np.arccos(cosine) + one_hot * m)
    similarity = (x_hat @ x_hat.T).reshape(-1)
    negative = np.triu(y[:, None] != y[None, :], k=1).reshape(-1)
    sorted_x = np.sort(similarity[negative])
    length = sorted_x.shape[0]
    lower, upper = sorted_x[int(0.25 * length)], sorted_x[int(0.75 * length)]
    iqr = upper - lower
    sn_prime = sorted_x[(sorted_x <= upper + wisk * iqr) & (sorted_x >= lower - wisk * iqr)]
    logits = s * np.concatenate([cosine, np.ones((len(y), 1)) * sn_prime[None, :]], axis=1)
    peak = logits.max(axis=1, keepdims=True)
    log_softmax = logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))
    return -log_softmax[np.arange(len(y)), y].mean()


@pytest.fixture
def batch():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((10, 6))
    weight = rng.standard_normal((4, 6))
    y = rng.integers(0, 4, size=10)
    return x, weight, y


@pytest.mark.parametrize("head", ["arcface", "cosface"])
@pytest.mark.parametrize("wisk", [0.0, 0.5, 1.5])
def test_unpg_loss_matches_the_official_pipeline(batch, head, wisk):
    x, weight, y = batch
    expected = _official_unpg(x, weight, y, head=head, s=64.0, m=0.5, wisk=wisk)
    np.testing.assert_allclose(unpg_loss(x, weight, y, margin=head, w=wisk), expected, rtol=1e-12)


def test_unpg_loss_hand_value_with_one_negative_pair():
    # cos = I; the pair (0, 1) has similarity 0 and is kept: each row's logits [0.5, 0, 0]
    eye = np.eye(2)
    loss = unpg_loss(eye, eye, np.array([0, 1]), margin="cosface", s=1.0)
    np.testing.assert_allclose(loss, math.log(math.exp(0.5) + 2.0) - 0.5, rtol=1e-15)


def test_unpg_loss_arcface_target_is_cos_theta_plus_m():
    # θ_y = π/3 (cos = 1/2), m = 0.5: the target logit is s·cos(π/3 + 0.5); one other class at 0
    x = np.array([[0.5, math.sqrt(3) / 2]])
    weight = np.array([[1.0, 0.0], [math.sqrt(3) / 2, -0.5]])  # unit rows; ⟨x, w_1⟩ = 0
    other = 0.0
    s = 5.0
    expected = math.log(math.exp(s * math.cos(math.pi / 3 + 0.5)) + math.exp(s * other)) - s * math.cos(
        math.pi / 3 + 0.5
    )
    np.testing.assert_allclose(
        unpg_loss(x, weight, np.array([0]), margin="arcface", s=s), expected, rtol=1e-13
    )


def test_unpg_loss_without_negative_pairs_is_the_plain_margin_softmax(batch):
    x, weight, _ = batch
    y = np.full(10, 3)  # one identity: no negative pair, nothing appended
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
        weight / np.linalg.norm(weight, axis=1)[:, None]
    ).T
    logits = 64.0 * cos
    logits[:, 3] -= 64.0 * 0.35
    expected = (
        np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1) - logits[:, 3]
    ).mean()
    np.testing.assert_allclose(unpg_loss(x, weight, y, margin="cosface", m=0.35), expected, rtol=1e-12)


def test_unpg_loss_appended_pairs_only_raise_the_loss(batch):
    x, weight, y = batch
    per_row = unpg_loss(x, weight, y, margin="arcface", s=8.0, reduction="none")
    plain = unpg_loss(x, weight, np.zeros_like(y), margin="arcface", s=8.0, reduction="none")
    same_label = y == 0
    assert same_label.any() and box_and_whisker_filter(x, y)[0].size > 0
    # rows with label 0 see the same class logits in both; the appended columns add mass
    assert np.all(per_row[same_label] > plain[same_label])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_unpg_loss_gradients_ignore_row_norms(batch, backend):
    x, weight, y = batch
    _, pullback = refimpl.vjp("unpg_loss", x, weight, y, margin="arcface", s=16.0, backend=backend)
    g_x, g_w = pullback(np.array(1.0))
    # the loss depends only on directions: ⟨x_i, ∂L/∂x_i⟩ = 0 and ⟨w_c, ∂L/∂w_c⟩ = 0
    np.testing.assert_allclose((x * g_x).sum(axis=1), 0.0, atol=1e-13)
    np.testing.assert_allclose((weight * g_w).sum(axis=1), 0.0, atol=1e-13)
    scaled = unpg_loss(x * np.linspace(0.1, 30.0, 10)[:, None], weight * 7.0, y, margin="arcface", s=16.0)
    np.testing.assert_allclose(scaled, unpg_loss(x, weight, y, margin="arcface", s=16.0), rtol=1e-13)


def test_unpg_loss_vjp_holds_the_kept_set_fixed(batch):
    x, weight, y = batch
    kept, pairs = box_and_whisker_filter(x, y, w=0.5)
    _, pullback = refimpl.vjp(unpg_loss, x, weight, y, margin="cosface", s=4.0, m=0.2, w=0.5)
    g_x, _ = pullback(np.array(1.0))
    # the same loss written with the kept pairs as a fixed list, its x-gradient by central differences
    x_hat = x / np.linalg.norm(x, axis=1, keepdims=True)

    def fixed_set_loss(x_):
        xh = x_ / np.linalg.norm(x_, axis=1, keepdims=True)
        wh = weight / np.linalg.norm(weight, axis=1, keepdims=True)
        logits = 4.0 * (xh @ wh.T)
        logits[np.arange(10), y] -= 4.0 * 0.2
        appended = 4.0 * (xh[pairs[:, 0]] * xh[pairs[:, 1]]).sum(1)
        full = np.concatenate([logits, np.broadcast_to(appended, (10, appended.size))], axis=1)
        peak = full.max(1, keepdims=True)
        return (np.log(np.exp(full - peak).sum(1)) + peak[:, 0] - logits[np.arange(10), y]).mean()

    np.testing.assert_allclose(
        fixed_set_loss(x), unpg_loss(x, weight, y, margin="cosface", s=4.0, m=0.2, w=0.5)
    )
    np.testing.assert_allclose((x_hat[pairs[:, 0]] * x_hat[pairs[:, 1]]).sum(1), kept, rtol=1e-13)
    step = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        bump = np.zeros_like(x)
        bump[index] = step
        numeric[index] = (fixed_set_loss(x + bump) - fixed_set_loss(x - bump)) / (2 * step)
    np.testing.assert_allclose(g_x, numeric, rtol=1e-6, atol=1e-9)


def test_unpg_loss_arcface_slope_is_zero_on_the_class_weight():
    # x on its class weight: cos θ_y = 1, acos has no derivative; the reference takes slope 0,
    # so the target column passes nothing back and w_0 (seen by that column only) gets 0
    x = np.array([[2.0, 0.0]])
    weight = np.array([[1.0, 0.0], [0.0, 1.0]])
    _, pullback = refimpl.vjp(unpg_loss, x, weight, np.array([0]), margin="arcface", s=3.0)
    g_x, g_w = pullback(np.array(1.0))
    assert np.all(np.isfinite(g_x)) and np.all(np.isfinite(g_w))
    np.testing.assert_array_equal(g_w[0], [0.0, 0.0])


def test_unpg_loss_refuses_zero_rows():
    eye = np.eye(2)
    with pytest.raises(refimpl.InputError, match="row 0 is all zeros"):
        unpg_loss(eye, np.array([[0.0, 0.0], [0.0, 1.0]]), np.array([0, 1]), margin="cosface")
    with pytest.raises(refimpl.InputError, match="row 1 is all zeros"):
        unpg_loss(np.array([[1.0, 0.0], [0.0, 0.0]]), eye, np.array([0, 1]), margin="arcface")
