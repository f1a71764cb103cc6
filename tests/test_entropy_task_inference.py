"""ConTraCon entropic task inference: entropies by hand, the official mean-logit form, the tie rule."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import entropy_task_inference


def _official_check_task(logits):
    """auto_run.py get_mean_output + check_task transcribed: mean logits over the views,
    sout = softmax, dist = −Σ sout·log(sout + 1e-4), argmin over tasks."""
    mean_logits = logits.mean(axis=1)  # (T, N, C)
    shifted = np.exp(mean_logits - mean_logits.max(axis=-1, keepdims=True))
    sout = shifted / shifted.sum(axis=-1, keepdims=True)
    dist = -np.sum(sout * np.log(sout + 0.0001), axis=-1)  # (T, N)
    all_entropy = dist.T
    return np.argmin(all_entropy, axis=1), all_entropy


def test_entropy_task_inference_hand_computed_entropies():
    # task 0 uniform over 2 classes (ln 2); task 1 p = (e^2/(e^2 + 1), 1/(e^2 + 1)) on both views
    logits = np.zeros((2, 2, 1, 2))
    logits[1, :, 0] = [2.0, 0.0]
    p = 1 / (1 + np.exp(-2.0))
    sharp = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    task, entropy = entropy_task_inference(logits)
    np.testing.assert_allclose(entropy, [[np.log(2.0), sharp]], rtol=1e-14)
    assert task.tolist() == [1]


def test_entropy_task_inference_paper_form_is_the_mean_of_view_entropies():
    rng = np.random.default_rng(0)
    logits = 2.0 * rng.standard_normal((3, 5, 4, 6))
    _, entropy = entropy_task_inference(logits)
    for t in range(3):
        per_view = np.array([[_entropy(logits[t, m, n]) for n in range(4)] for m in range(5)])
        np.testing.assert_allclose(entropy[:, t], per_view.mean(axis=0), rtol=1e-13)


def _entropy(z):
    p = np.exp(z - z.max())
    p /= p.sum()
    return -np.sum(p * np.log(p))


def test_entropy_task_inference_official_matches_the_official_check_task():
    rng = np.random.default_rng(1)
    logits = 3.0 * rng.standard_normal((4, 16, 7, 10))  # M = 16 views as in get_aug_img
    task, entropy = entropy_task_inference(logits, official=True)
    official_task, official_entropy = _official_check_task(logits)
    np.testing.assert_allclose(entropy, official_entropy, rtol=1e-13)
    np.testing.assert_array_equal(task, official_task)


def test_entropy_task_inference_official_and_paper_forms_disagree_on_disagreeing_views():
    logits = np.array([[[[10.0, 0.0]], [[0.0, 10.0]]], [[[1.0, 0.0]], [[1.0, 0.0]]]])
    assert entropy_task_inference(logits)[0].tolist() == [0]
    assert entropy_task_inference(logits, official=True)[0].tolist() == [1]
    # official: mean logits [5, 5] give p = ½: −log(0.5 + 1e-4)
    np.testing.assert_allclose(
        entropy_task_inference(logits, official=True)[1][0, 0], -np.log(0.5001), rtol=1e-14
    )


@pytest.mark.parametrize("official", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_entropy_task_inference_ties_go_to_the_lowest_task(official, dtype):
    rng = np.random.default_rng(2)
    base = rng.standard_normal((1, 3, 5, 4))
    # tasks 1 and 3 bit-identical and sharpest; task 0 and 2 flatter
    logits = np.concatenate([0.2 * base, 4.0 * base, base, 4.0 * base]).astype(dtype)
    task, entropy = entropy_task_inference(logits, official=official)
    np.testing.assert_array_equal(entropy[:, 1], entropy[:, 3])
    assert task.tolist() == [1] * 5
    everything_equal = np.repeat(base, 3, axis=0).astype(dtype)
    assert entropy_task_inference(everything_equal, official=official)[0].tolist() == [0] * 5


def test_entropy_task_inference_saturated_logits_give_finite_entropies():
    logits = np.array([[[[1e4, -1e4, 0.0]]], [[[0.0, 0.0, 0.0]]]])
    task, entropy = entropy_task_inference(logits)
    np.testing.assert_allclose(entropy, [[0.0, np.log(3.0)]], atol=1e-300, rtol=1e-14)
    assert task.tolist() == [0]


def test_entropy_task_inference_refuses_non_finite_logits():
    logits = np.zeros((2, 1, 1, 3))
    logits[0, 0, 0, 0] = np.nan
    with pytest.raises(refimpl.InputError):
        entropy_task_inference(logits)
