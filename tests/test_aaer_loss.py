"""AAER: the official training-loop formula, empty sets, detached V(normal), the gate, gradients."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import aaer_loss


def _official_aaer(loss_before, output_org, loss_after, output, lamda1=1.0, lamda2=4.0, lamda3=1.5):
    """The official training loop's loss from the two CE vectors and logits on, in NumPy."""

    def l2_square(x, y):
        difference = x - y
        return (difference * difference).sum(1).mean(0)

    abnormal_example = loss_before > loss_after
    normal_example = loss_before <= loss_after
    abnormal_count, normal_count = abnormal_example.sum(), normal_example.sum()
    loss = loss_after.mean()
    if abnormal_count != 0 and normal_count != 0:
        abnormal_variation = l2_square(output_org[abnormal_example], output[abnormal_example])
        normal_variation = l2_square(output_org[normal_example], output[normal_example])
        abnormal_ce = (abnormal_example * (loss_before - loss_after)).sum() / abnormal_count
        loss = loss + (lamda1 * abnormal_count / len(loss_after)) * (
            lamda2 * abnormal_ce + lamda3 * max(abnormal_variation - normal_variation, 0)
        )
    return loss


def _batch(seed, batch=8, classes=5):
    rng = np.random.default_rng(seed)
    loss_before = rng.uniform(0.2, 3.0, batch)
    loss_after = loss_before + rng.choice([-1.0, 1.0], batch) * rng.uniform(0.05, 1.0, batch)
    logits_before = rng.standard_normal((batch, classes))
    logits_after = logits_before + rng.standard_normal((batch, classes)) * rng.uniform(0.1, 2.0, (batch, 1))
    return loss_before, logits_before, loss_after, logits_after


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_aaer_matches_the_official_training_loop(backend, seed):
    args = _batch(seed)
    expected = _official_aaer(*args)
    loss, _ = refimpl.vjp("aaer_loss", *args, backend=backend)
    np.testing.assert_allclose(loss, expected, rtol=1e-13)
    kwargs = {"lambda1": 0.5, "lambda2": 2.0, "lambda3": 3.0}
    expected = _official_aaer(*args, lamda1=0.5, lamda2=2.0, lamda3=3.0)
    np.testing.assert_allclose(aaer_loss(*args, **kwargs), expected, rtol=1e-13)


def test_aaer_without_abnormal_examples_is_the_plain_mean_ce():
    loss_before, logits_before, _, logits_after = _batch(4)
    loss_after = loss_before + 0.1  # every FGSM step raised the loss
    loss, pullback = refimpl.vjp(aaer_loss, loss_before, logits_before, loss_after, logits_after)
    np.testing.assert_allclose(loss, loss_after.mean(), rtol=1e-15)
    g_loss_after, g_logits = pullback(np.array(2.0))
    np.testing.assert_allclose(g_loss_after, 2.0 / 8)
    np.testing.assert_array_equal(g_logits, 0.0)
    # only abnormal rows (normal set empty): the official code adds nothing either
    loss = aaer_loss(loss_before, logits_before, loss_before - 0.1, logits_after)
    np.testing.assert_allclose(loss, (loss_before - 0.1).mean(), rtol=1e-15)


def test_aaer_variation_of_the_normal_rows_is_detached():
    loss_before = np.array([1.0, 1.0, 1.0])
    loss_after = np.array([0.5, 1.5, 2.0])  # row 0 abnormal
    logits_before = np.zeros((3, 2))
    logits_after = np.array([[2.0, 0.0], [0.5, 0.0], [0.0, 1.0]])
    loss, pullback = refimpl.vjp(aaer_loss, loss_before, logits_before, loss_after, logits_after)
    # V(AAE) = 4, V(normal) = (0.25 + 1)/2; L = mean ℓ + (1/3)(4·0.5 + 1.5·(4 − 0.625))
    np.testing.assert_allclose(loss, 4.0 / 3 + (2.0 + 1.5 * 3.375) / 3, rtol=1e-15)
    g_loss_after, g_logits = pullback(np.array(1.0))
    np.testing.assert_allclose(g_loss_after, [1 / 3 - 4 / 3, 1 / 3, 1 / 3], rtol=1e-15)
    np.testing.assert_allclose(g_logits, [[2 * 1.5 / 3 * 2.0, 0.0], [0.0, 0.0], [0.0, 0.0]], rtol=1e-15)
    # the value does depend on the normal logits (through V(normal)), the gradient does not
    moved = logits_after.copy()
    moved[1, 0] += 0.1
    assert aaer_loss(loss_before, logits_before, loss_after, moved) < loss


def test_aaer_gate_closes_when_abnormal_rows_vary_less():
    loss_before, loss_after = np.array([1.0, 1.0]), np.array([0.5, 1.5])
    logits_before = np.zeros((2, 1))
    logits_after = np.array([[0.5], [2.0]])  # V(AAE) = 0.25 < V(normal) = 4
    loss, pullback = refimpl.vjp(aaer_loss, loss_before, logits_before, loss_after, logits_after)
    np.testing.assert_allclose(loss, 1.0 + 0.5 * 4.0 * 0.5, rtol=1e-15)  # only the λ2 term
    g_loss_after, g_logits = pullback(np.array(1.0))
    np.testing.assert_allclose(g_loss_after, [0.5 - 2.0, 0.5])
    np.testing.assert_array_equal(g_logits, 0.0)
    # a tie V(AAE) = V(normal) keeps the gate open, as the official max(t, 0) returns t
    _, pullback = refimpl.vjp(aaer_loss, loss_before, logits_before, loss_after, np.array([[2.0], [-2.0]]))
    np.testing.assert_allclose(pullback(np.array(1.0))[1], [[1.5 * 2.0], [0.0]])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_aaer_detached_gap_drops_only_the_lambda2_gradient(backend):
    args = _batch(5)
    paper, pullback_paper = refimpl.vjp("aaer_loss", *args, backend=backend)
    official, pullback_official = refimpl.vjp("aaer_loss", *args, detach_loss_gap=True, backend=backend)
    np.testing.assert_allclose(paper, official, rtol=1e-15)
    g_paper, g_official = pullback_paper(np.array(1.0)), pullback_official(np.array(1.0))
    np.testing.assert_allclose(g_official[0], 1 / 8)
    abnormal = args[0] > args[2]
    np.testing.assert_allclose(g_paper[0], np.where(abnormal, 1 / 8 - 4 / 8, 1 / 8), rtol=1e-14)
    np.testing.assert_allclose(g_paper[1], g_official[1], rtol=1e-15)


def test_aaer_equal_losses_count_as_normal():
    loss_before, loss_after = np.array([1.0, 1.0]), np.array([1.0, 0.5])  # row 0: ℓ_before = ℓ_after
    logits_before, logits_after = np.zeros((2, 1)), np.array([[1.0], [3.0]])
    loss = aaer_loss(loss_before, logits_before, loss_after, logits_after)
    # AAE = {1}: 0.75 + (1/2)(4·0.5 + 1.5·(9 − 1))
    np.testing.assert_allclose(loss, 0.75 + 0.5 * (2.0 + 12.0), rtol=1e-15)
