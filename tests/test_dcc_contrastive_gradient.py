"""DCC contrastive gradient matching: the official main.py loss transcribed (DCC and DC
branches), the mean-of-class-means identity, the 1/C gradient share."""

import numpy as np
import pytest

import refimpl
from refimpl.data_selection import dcc_contrastive_gradient, gradient_matching_distance

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _official_distance_wb(gwr, gws):
    """Saehyung-Lee/DCC utils.py ``distance_wb`` (rank 2 and 4 branches), transcribed."""
    if gwr.ndim == 1:
        return 0.0
    gwr, gws = gwr.reshape(gwr.shape[0], -1), gws.reshape(gws.shape[0], -1)
    norms = np.linalg.norm(gwr, axis=-1) * np.linalg.norm(gws, axis=-1)
    return np.sum(1 - np.sum(gwr * gws, axis=-1) / (norms + 0.000001))


def _official_loss(real, syn, contrast):
    """main.py's inner loop for one layer: DC sums match_loss per class; DCC accumulates
    gw_real += gw_real_i/num_classes and matches it against the all-class synthetic gradient."""
    num_classes = real.shape[0]
    if not contrast:
        return sum(_official_distance_wb(real[c], syn[c]) for c in range(num_classes))
    gw_real = 0.0
    for c in range(num_classes):
        gw_real = real[c] / float(num_classes) + gw_real
    gw_syn = syn.mean(axis=0)  # the gradient of the mean CE over ipc images of every class
    return _official_distance_wb(gw_real, gw_syn)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("contrast", [True, False])
@pytest.mark.parametrize("layer", [(6, 3, 2, 2), (5, 8), (7,)])
def test_dcc_contrastive_gradient_matches_official_main_loop(backend, contrast, layer):
    rng = np.random.default_rng(0)
    real = rng.standard_normal((10, *layer))
    syn = 0.4 * real + rng.standard_normal(real.shape)
    got = _backend(backend).get("dcc_contrastive_gradient")(real, syn, contrast=contrast)
    np.testing.assert_allclose(got, _official_loss(real, syn, contrast), rtol=1e-12, atol=1e-15)


def test_dcc_mean_syn_gradient_is_the_all_class_softmax_linear_gradient():
    """Ḡ^S = mean of per-class gradients equals the gradient of the mean CE over all
    synthetic images of a softmax-linear model, with equal images per class."""
    rng = np.random.default_rng(1)
    num_classes, ipc, dim = 3, 4, 5
    x = rng.standard_normal((num_classes * ipc, dim))
    labels = np.repeat(np.arange(num_classes), ipc)
    weights = rng.standard_normal((dim, num_classes))

    def gradient(xs, ys):
        logits = xs @ weights
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(ys)), ys] -= 1
        return (xs.T @ p / len(ys)).T  # (out, in): rows are output units

    per_class = np.stack([gradient(x[labels == c], labels[labels == c]) for c in range(num_classes)])
    np.testing.assert_allclose(per_class.mean(axis=0), gradient(x, labels), rtol=1e-12)
    real = rng.standard_normal(per_class.shape)
    np.testing.assert_allclose(
        dcc_contrastive_gradient(real, per_class),
        gradient_matching_distance(real.mean(axis=0), gradient(x, labels)),
        rtol=1e-12,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_dcc_contrastive_gradient_gives_every_class_one_cth_of_the_mean_gradient(backend):
    rng = np.random.default_rng(2)
    real, syn = rng.standard_normal((4, 3, 5)), rng.standard_normal((4, 3, 5))
    _, pullback = refimpl.vjp("dcc_contrastive_gradient", real, syn, backend=_backend(backend))
    (g_syn,) = pullback(np.array(1.0))
    _, mean_pullback = refimpl.vjp("gradient_matching_distance", real.mean(axis=0), syn.mean(axis=0))
    (g_mean,) = mean_pullback(np.array(1.0))
    for c in range(4):
        np.testing.assert_allclose(g_syn[c], g_mean / 4, rtol=1e-12)


def test_dcc_dc_is_the_sum_of_class_distances_and_differs_from_dcc():
    rng = np.random.default_rng(3)
    real, syn = rng.standard_normal((3, 4, 6)), rng.standard_normal((3, 4, 6))
    dc = dcc_contrastive_gradient(real, syn, contrast=False)
    np.testing.assert_allclose(
        dc, sum(gradient_matching_distance(real[c], syn[c]) for c in range(3)), rtol=1e-13
    )
    assert abs(float(dc) - float(dcc_contrastive_gradient(real, syn))) > 0.1
    # one class: DC and DCC coincide
    np.testing.assert_allclose(
        dcc_contrastive_gradient(real[:1], syn[:1]),
        dcc_contrastive_gradient(real[:1], syn[:1], contrast=False),
    )


def test_dcc_swapped_classes_hand_values():
    real = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    syn = real[::-1].copy()
    assert float(dcc_contrastive_gradient(real, syn, contrast=False, eps=0.0)) == pytest.approx(
        2.0, abs=1e-15
    )
    assert float(dcc_contrastive_gradient(real, syn, eps=0.0)) == pytest.approx(0.0, abs=1e-15)
