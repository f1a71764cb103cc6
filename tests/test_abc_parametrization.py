"""abc-parametrizations: the paper's table, its symmetry, and the coordinate check of μP."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import ABC_PARAMETRIZATIONS, abc_exponents, abc_init_std, abc_parametrize


def test_abc_parametrize_multiplies_by_n_to_the_minus_a():
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_array_equal(abc_parametrize(w, n=256, a=-0.5), 16.0 * w)  # μP input layer
    np.testing.assert_array_equal(abc_parametrize(w, n=1024, a=0.5), w / 32.0)  # μP output layer
    np.testing.assert_array_equal(abc_parametrize(w, n=7, a=0.0), w)
    np.testing.assert_array_equal(abc_parametrize(w, n=1, a=3.7), w)
    np.testing.assert_allclose(abc_parametrize(w, n=100, a=1.0), w / 100.0, rtol=1e-15)


def test_abc_parametrize_backward_is_the_same_multiplier():
    w = np.array([0.3, -1.2, 2.0])
    g_W = np.array([1.0, 5.0, -0.25])
    W, pullback = refimpl.vjp("abc_parametrize", w, n=9, a=0.5)
    (g_w,) = pullback(g_W)
    np.testing.assert_allclose(W, w / 3.0, rtol=1e-15)
    np.testing.assert_allclose(g_w, g_W / 3.0, rtol=1e-15)


def test_abc_parametrize_keeps_float32_and_rounds_the_multiplier_once():
    w = np.array([1.0, 3.0], dtype=np.float32)
    W = abc_parametrize(w, n=3, a=0.5)
    assert W.dtype == np.float32
    np.testing.assert_array_equal(W, w * np.float32(3.0**-0.5))


def test_abc_init_std_matches_the_table_by_hand_at_n_64():
    layers = np.array([1, 2, 3, 4])  # L = 3: input, two hidden, output
    m, std, lr = abc_init_std(layers, depth=3, n=64, parametrization="mup")
    np.testing.assert_array_equal(m, [8.0, 1.0, 1.0, 0.125])  # 64^{½}, 1, 1, 64^{−½}
    np.testing.assert_array_equal(std, [0.125] * 4)
    np.testing.assert_array_equal(lr, [1.0] * 4)
    m, std, lr = abc_init_std(layers, depth=3, n=64, parametrization="ntp")
    np.testing.assert_array_equal(m, [1.0, 0.125, 0.125, 0.125])
    np.testing.assert_array_equal(std, [1.0] * 4)
    m, std, lr = abc_init_std(layers, depth=3, n=64, parametrization="sp")
    np.testing.assert_array_equal(m, [1.0] * 4)
    np.testing.assert_array_equal(std, [1.0, 0.125, 0.125, 0.125])
    m, std, lr = abc_init_std(np.array([1, 2]), depth=1, n=100, parametrization="mfp")
    np.testing.assert_allclose(m, [1.0, 0.01], rtol=1e-15)
    np.testing.assert_array_equal(std, [1.0, 1.0])
    np.testing.assert_allclose(lr, [100.0, 100.0], rtol=1e-15)


def test_every_effective_initial_weight_has_the_std_of_its_parametrization():
    # the std of W^l = n^{−a} w^l at init is n^{−(a + b)}: 1 for the input layer, n^{−½} for
    # hidden layers; at the output n^{−1} (μP, MFP) or n^{−½} (SP, NTP)
    n, depth = 400, 2
    layers = np.array([1, 2, 3])
    expected = {"mup": [1.0, 0.05, 0.0025], "sp": [1.0, 0.05, 0.05], "ntp": [1.0, 0.05, 0.05]}
    for name, stds in expected.items():
        m, std, _ = abc_init_std(layers, depth=depth, n=n, parametrization=name)
        np.testing.assert_allclose(m * std, stds, rtol=1e-14)


@pytest.mark.parametrize("name", ["mup", "ntp", "mfp", "sp"])
def test_stability_conditions_of_theorem_3_3(name):
    depth = 1 if name == "mfp" else 3
    a, b, c = abc_exponents(name, np.arange(1, depth + 2), depth)
    assert a[0] + b[0] == 0.0
    np.testing.assert_array_equal(a[1:-1] + b[1:-1], 0.5)
    assert a[-1] + b[-1] >= 0.5
    # SP is the parametrization the paper finds unstable at c = 0 (it needs c = 1)
    assert (2 * a[-1] + c >= 1.0) == (name != "sp")
    if name == "mup":  # μP: equality everywhere (Definition 5.1: maximal updates)
        assert a[-1] + b[-1] == 1.0 and 2 * a[-1] + c == 1.0


def test_the_table_has_the_four_named_parametrizations():
    assert sorted(ABC_PARAMETRIZATIONS) == ["mfp", "mup", "ntp", "sp"]


def test_bad_layer_and_mean_field_depth_are_refused():
    with pytest.raises(refimpl.InputError, match=r"'layer'.*\[1, L \+ 1\] = \[1, 3\]"):
        abc_init_std(np.array([1, 4]), depth=2, n=8, parametrization="mup")
    with pytest.raises(refimpl.InputError, match=r"'depth'.*'mfp'"):
        abc_init_std(np.array([1, 2]), depth=2, n=8, parametrization="mfp")
    with pytest.raises(refimpl.InputError, match="'layer'"):
        abc_init_std(np.array([0, 1]), depth=2, n=8, parametrization="sp")


# -- a tiny MLP trained with SGD, every layer through abc_parametrize ---------------------------------
def _train_mlp(
    n, name, *, theta=0.0, shift=(1.0, -1.0, -2.0), depth=2, d=4, batch=4, eta=0.5, steps=3, seed=0
):
    """SGD on f(ξ) = W^{L+1} tanh(W^L ⋯ tanh(W^1 ξ)), W^l = n^{−a_l} w^l, loss ½·mean (f − y)².

    The exponents are those of ``name`` shifted by θ: (a + θ, b − θ, c − 2θ) with the default
    ``shift`` (the coefficients of θ for a, b and c). The trained w^l
    starts at n^{−b_l}·z^l with z^l standard normal from ``seed`` (the same z for every θ).
    Returns the pre-activations h^l at every step (on the training batch), the effective
    weights W^l at every step, and the outputs f at every step.
    """
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((batch, d)), rng.standard_normal((batch, 1))
    shapes = [(n, d)] + [(n, n)] * (depth - 1) + [(1, n)]
    a, b, c = abc_exponents(name, np.arange(1, depth + 2), depth)
    a, b, c = a + shift[0] * theta, b + shift[1] * theta, c + shift[2] * theta
    w = [np.float64(n) ** -b_l * rng.standard_normal(shape) for b_l, shape in zip(b, shapes, strict=True)]
    lr = eta * np.float64(n) ** -c
    h_history, W_history, f_history = [], [], []
    for step in range(steps + 1):
        forwards = [
            refimpl.vjp("abc_parametrize", w_l, n=n, a=float(a_l)) for w_l, a_l in zip(w, a, strict=True)
        ]
        W = [W_l for W_l, _ in forwards]
        xs, hs = [X], []
        for layer in range(depth):
            hs.append(xs[-1] @ W[layer].T)
            xs.append(np.tanh(hs[-1]))
        f = xs[-1] @ W[depth].T
        h_history.append(hs)
        W_history.append(W)
        f_history.append(f)
        if step == steps:
            break
        g_f = (f - Y) / batch
        g_W = [None] * (depth + 1)
        g_W[depth] = g_f.T @ xs[depth]
        g_x = g_f @ W[depth]
        for layer in range(depth - 1, -1, -1):
            g_h = g_x * (1 - xs[layer + 1] ** 2)
            g_W[layer] = g_h.T @ xs[layer]
            g_x = g_h @ W[layer]
        for layer, (_, pullback) in enumerate(forwards):
            (g_w,) = pullback(g_W[layer])  # ∂L/∂w = n^{−a} ∂L/∂W
            w[layer] = w[layer] - lr * g_w
    return h_history, W_history, f_history


@pytest.mark.parametrize("name", ["mup", "ntp", "sp"])
def test_the_symmetry_a_plus_theta_b_minus_theta_c_minus_two_theta_leaves_sgd_unchanged(name):
    _, W_ref, f_ref = _train_mlp(50, name, steps=4)
    for theta in (0.3, -0.7):
        _, W_shift, f_shift = _train_mlp(50, name, theta=theta, steps=4)
        for step in range(5):
            np.testing.assert_allclose(f_shift[step], f_ref[step], rtol=1e-12, atol=1e-14)
            for W_s, W_r in zip(W_shift[step], W_ref[step], strict=True):
                np.testing.assert_allclose(W_s, W_r, rtol=1e-12, atol=1e-14 * np.abs(W_r).max())
    # without the c − 2θ part the initial W is the same but the first step is not
    _, W_bad, _ = _train_mlp(50, name, theta=0.3, shift=(1.0, -1.0, 0.0), steps=1)
    np.testing.assert_allclose(W_bad[0][1], W_ref[0][1], rtol=1e-12)
    assert not np.allclose(W_bad[1][1], W_ref[1][1], rtol=1e-6)


def _coordinate_changes(name, widths, seeds=4, steps=3):
    """Mean |h^l_t − h^l_0| over coordinates and inputs, per hidden layer, averaged over seeds."""
    changes = []
    for n in widths:
        per_seed = []
        for seed in range(seeds):
            hs, _, _ = _train_mlp(n, name, steps=steps, seed=seed)
            per_seed.append([np.abs(h_t - h_0).mean() for h_t, h_0 in zip(hs[-1], hs[0], strict=True)])
        changes.append(np.mean(per_seed, axis=0))
    return np.array(changes)  # (widths, hidden layers)


WIDTHS = (64, 256, 1024)


def _slopes(changes):
    """The log-log slope of the change against the width, per hidden layer."""
    logs = np.log(np.array(WIDTHS, dtype=np.float64))
    return np.array([np.polyfit(logs, np.log(changes[:, k]), 1)[0] for k in range(changes.shape[1])])


def test_coordinate_check_mup_updates_are_flat_in_width():
    changes = _coordinate_changes("mup", WIDTHS)
    assert (changes > 0.05).all()  # features move by Θ(1): they are learned
    slopes = _slopes(changes)
    assert np.abs(slopes).max() < 0.1, slopes  # flat in n
    np.testing.assert_allclose(changes[-1] / changes[0], 1.0, atol=0.25)


def test_coordinate_check_ntp_updates_vanish_like_one_over_root_n():
    changes = _coordinate_changes("ntp", WIDTHS)
    slopes = _slopes(changes)
    assert (slopes < -0.35).all() and (slopes > -0.7).all(), slopes  # ≈ −½: kernel regime
    assert (changes[-1] / changes[0] < 0.4).all()


def test_coordinate_check_sp_at_c_0_blows_up():
    changes = _coordinate_changes("sp", WIDTHS, seeds=2)
    assert (_slopes(changes) > 0.5).all()  # the paper: SP is unstable at c = 0
