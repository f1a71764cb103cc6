"""μP's optimizer rules: hand values, the official rules parameter by parameter, and the
coordinate check of a model trained with them."""

import numpy as np
import pytest

from refimpl.optim import mup_param_group_scaling

# an MLP: input weight, its bias, hidden weight, its bias, readout weight, its bias
ROWS = ("input", "input bias", "hidden", "hidden bias", "readout", "readout bias")
READOUT = np.array([False, False, False, False, True, False])


def _mlp_shapes(width, d_in=10, d_out=3):
    return np.array([[width, d_in], [width, 1], [width, width], [width, 1], [d_out, width], [d_out, 1]])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_base_shape_equal_to_shape_gives_every_multiplier_one(optimizer):
    shapes = _mlp_shapes(96)
    lr, wd, out = mup_param_group_scaling(shapes, shapes, READOUT, optimizer=optimizer)
    np.testing.assert_array_equal(lr, 1.0)
    np.testing.assert_array_equal(wd, 1.0)
    np.testing.assert_array_equal(out, 1.0)
    _, _, out = mup_param_group_scaling(shapes, shapes, READOUT, optimizer=optimizer, output_mult=2.5)
    np.testing.assert_array_equal(out, [1.0, 1.0, 1.0, 1.0, 2.5, 1.0])


def test_adam_rules_by_hand_at_four_times_the_base_width():
    lr, wd, out = mup_param_group_scaling(_mlp_shapes(256), _mlp_shapes(64), READOUT, optimizer="adam")
    # only the hidden (inf, inf) weight is matrix-like: lr / 4, wd · 4; readout input / 4
    np.testing.assert_array_equal(lr, [1.0, 1.0, 0.25, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(wd, [1.0, 1.0, 4.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(out, [1.0, 1.0, 1.0, 1.0, 0.25, 1.0])


def test_sgd_rules_by_hand_at_four_times_the_base_width():
    lr, wd, out = mup_param_group_scaling(_mlp_shapes(256), _mlp_shapes(64), READOUT, optimizer="sgd")
    # vector-like (one infinite dimension): lr · 4, wd / 4; the square hidden weight: ratio 1
    np.testing.assert_array_equal(lr, [4.0, 4.0, 1.0, 4.0, 4.0, 1.0])
    np.testing.assert_array_equal(wd, [0.25, 0.25, 1.0, 0.25, 0.25, 1.0])
    np.testing.assert_array_equal(out, [1.0, 1.0, 1.0, 1.0, 0.25, 1.0])


def test_sgd_matrix_rule_uses_the_fan_in_over_fan_out_multiplier_ratio():
    # (fan_out, fan_in) = (4n, n) against base (n0, n0) with n = 2 n0: mult_out 8, mult_in 2
    lr, wd, _ = mup_param_group_scaling(
        np.array([[256, 64]]), np.array([[32, 32]]), np.array([False]), optimizer="sgd"
    )
    np.testing.assert_array_equal(lr, [4.0])  # lr / (2/8)
    np.testing.assert_array_equal(wd, [0.25])
    lr, wd, _ = mup_param_group_scaling(
        np.array([[256, 64]]), np.array([[32, 32]]), np.array([False]), optimizer="adam"
    )
    np.testing.assert_array_equal(lr, [0.5])  # Adam: width_mult is fan_in's, 2
    np.testing.assert_array_equal(wd, [2.0])


def test_a_width_dimension_equal_to_its_base_counts_when_marked_infinite():
    shapes, base = np.array([[64, 256]]), np.array([[64, 64]])
    readout = np.array([False])
    lr_default, _, _ = mup_param_group_scaling(shapes, base, readout, optimizer="adam")
    lr_marked, wd_marked, _ = mup_param_group_scaling(
        shapes, base, readout, np.array([[True, True]]), optimizer="adam"
    )
    assert lr_default[0] == 1.0  # fan_out equal to its base: finite, so vector-like
    assert lr_marked[0] == 0.25 and wd_marked[0] == 4.0  # both infinite: matrix-like


# -- microsoft/mup's rules, written out parameter by parameter ---------------------------------------
def _official_infshape(base_dims, dims, delta_dims=None):
    """mup/infshape.py ``zip_infshape`` (and, with a delta model, mup/shape.py's two zips):
    a list of (base_dim or None, dim); None marks a finite dimension."""
    if delta_dims is None:
        return [(None if b == d else b, d) for b, d in zip(base_dims, dims, strict=True)]
    marked = [(None if b == e else b) for b, e in zip(base_dims, delta_dims, strict=True)]
    return [(b, d) for b, d in zip(marked, dims, strict=True)]


def _official_dim_mult(dim):
    base_dim, size = dim
    return 1 if base_dim is None else size / base_dim  # InfDim.width_mult


def _official_multipliers(infshape, optimizer, lr=1.0, weight_decay=1.0):
    """mup/optim.py ``MuAdam`` / ``MuSGD``: the group lr and weight decay of one parameter."""
    infinite = [i for i, dim in enumerate(infshape) if dim[0] is not None]
    main = _official_dim_mult(infshape[infinite[-1]]) if infinite else 1  # InfShape.width_mult
    if optimizer == "adam":
        if len(infinite) == 2:
            return lr / main, weight_decay * main
        return lr, weight_decay
    if len(infinite) == 1:
        return lr * main, weight_decay / main
    if len(infinite) == 2:
        ratio = _official_dim_mult(infshape[1]) / _official_dim_mult(infshape[0])  # fanin/fanout
        return lr / ratio, weight_decay * ratio
    return lr, weight_decay


def _random_model(rng, count=12):
    base = int(rng.integers(8, 65))
    delta = 2 * base
    width = int(rng.integers(1, 5 * base))
    params = []  # (true shape, base shape, delta shape) of each parameter, 1-D vectors as 1-D
    for _ in range(count):
        kind = int(rng.integers(0, 5))
        k_out, k_in, fixed = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 20))
        if kind == 0:
            params.append(((k_out * width, fixed), (k_out * base, fixed), (k_out * delta, fixed)))
        elif kind == 1:
            params.append(
                ((k_out * width, k_in * width), (k_out * base, k_in * base), (k_out * delta, k_in * delta))
            )
        elif kind == 2:
            params.append(((fixed, k_in * width), (fixed, k_in * base), (fixed, k_in * delta)))
        elif kind == 3:
            params.append(((k_out * width,), (k_out * base,), (k_out * delta,)))
        else:
            params.append(((fixed,), (fixed,), (fixed,)))
    return params


def _as_rows(shape):
    return shape if len(shape) == 2 else (shape[0], 1)  # a vector (d,) is the row (d, 1)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("with_delta", [False, True])
def test_multipliers_equal_the_official_rules_on_random_models(optimizer, with_delta):
    rng = np.random.default_rng(7 + with_delta)
    for _ in range(20):
        params = _random_model(rng)
        shapes = np.array([_as_rows(p[0]) for p in params])
        base_shapes = np.array([_as_rows(p[1]) for p in params])
        infinite = np.array([_as_rows(p[1]) for p in params]) != np.array([_as_rows(p[2]) for p in params])
        lr, wd, _ = mup_param_group_scaling(
            shapes,
            base_shapes,
            np.zeros(len(params), bool),
            infinite if with_delta else None,
            optimizer=optimizer,
        )
        for k, (shape, base, delta) in enumerate(params):
            infshape = _official_infshape(base, shape, delta if with_delta else None)
            expected_lr, expected_wd = _official_multipliers(infshape, optimizer)
            assert lr[k] == expected_lr and wd[k] == expected_wd, (shape, base, delta)


def test_readout_multiplier_equals_mureadout_output_mult_over_width_mult():
    shapes = np.array([[10, 300], [10, 300]])
    base = np.array([[10, 100], [10, 100]])
    _, _, out = mup_param_group_scaling(
        shapes, base, np.array([True, False]), optimizer="adam", output_mult=0.3
    )
    assert out[0] == 0.3 / 3.0  # MuReadout.forward: output_mult * x / width_mult
    assert out[1] == 1.0


# -- the coordinate check: an MLP in PyTorch's parametrization, made μP by the rules above ------------
def _coordinate_change(width, optimizer, use_mup, *, base=64, steps=3, seed=0, d=4, batch=4):
    """Mean |h^l_t − h^l_0| of both hidden layers of a tanh MLP after ``steps`` optimizer steps.

    Weights start as PyTorch-style N(0, 1/fan_in), biases and the readout weight at 0 (mup's
    ``readout_zero_init``: the output starts at 0 at every width, so the finite-width
    fluctuation of the initial output, O(n^{−½}), does not enter the comparison). With
    ``use_mup`` the readout's input is multiplied by ``readout_mult`` and every parameter's
    lr by ``lr_mult``; without it, plain SP.
    """
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((batch, d)), rng.standard_normal((batch, 1))
    shapes = np.array([[width, d], [width, 1], [width, width], [width, 1], [1, width], [1, 1]])
    base_shapes = np.array([[base, d], [base, 1], [base, base], [base, 1], [1, base], [1, 1]])
    readout = np.array([False, False, False, False, True, False])
    lr_mult, _, readout_mult = mup_param_group_scaling(shapes, base_shapes, readout, optimizer=optimizer)
    if not use_mup:
        lr_mult, readout_mult = np.ones(6), np.ones(6)
    params = [
        rng.standard_normal((width, d)) / np.sqrt(d),
        np.zeros(width),
        rng.standard_normal((width, width)) / np.sqrt(width),
        np.zeros(width),
        np.zeros((1, width)),  # MuReadout(readout_zero_init=True): f = 0 at init at every width
        np.zeros(1),
    ]
    lr = 0.3 if optimizer == "sgd" else 0.01
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]

    def forward(p):
        h1 = X @ p[0].T + p[1]
        x1 = np.tanh(h1)
        h2 = x1 @ p[2].T + p[3]
        x2 = np.tanh(h2)
        f = (readout_mult[4] * x2) @ p[4].T + p[5]
        return h1, x1, h2, x2, f

    h1_0, _, h2_0, _, _ = forward(params)
    for step in range(1, steps + 1):
        h1, x1, h2, x2, f = forward(params)
        g_f = (f - Y) / batch
        g_x2_in = readout_mult[4] * x2
        grads = [None] * 6
        grads[4], grads[5] = g_f.T @ g_x2_in, g_f.sum(0)
        g_h2 = (g_f @ params[4]) * readout_mult[4] * (1 - x2**2)
        grads[2], grads[3] = g_h2.T @ x1, g_h2.sum(0)
        g_h1 = (g_h2 @ params[2]) * (1 - x1**2)
        grads[0], grads[1] = g_h1.T @ X, g_h1.sum(0)
        for k, g in enumerate(grads):
            if optimizer == "sgd":
                params[k] = params[k] - lr * lr_mult[k] * g
            else:  # Adam, β = (0.9, 0.999), ε = 1e-8
                m, v = moments[k]
                m[...] = 0.9 * m + 0.1 * g
                v[...] = 0.999 * v + 0.001 * g**2
                m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
                params[k] = params[k] - lr * lr_mult[k] * m_hat / (np.sqrt(v_hat) + 1e-8)
    h1, _, h2, _, _ = forward(params)
    return np.array([np.abs(h1 - h1_0).mean(), np.abs(h2 - h2_0).mean()])


WIDTHS = (64, 256, 1024)


def _slopes(optimizer, use_mup, seeds=4):
    changes = np.array(
        [
            np.mean([_coordinate_change(n, optimizer, use_mup, seed=s) for s in range(seeds)], axis=0)
            for n in WIDTHS
        ]
    )
    logs = np.log(np.array(WIDTHS, dtype=np.float64))
    return np.array([np.polyfit(logs, np.log(changes[:, k]), 1)[0] for k in range(2)]), changes


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_coordinate_check_mup_rules_keep_updates_flat_in_width_where_sp_grows(optimizer):
    slopes, changes = _slopes(optimizer, use_mup=True)
    assert np.abs(slopes).max() < 0.1, (slopes, changes)  # flat (1/√n would be −0.5)
    assert (changes > 1e-3).all()  # the features do move
    sp_slopes, _ = _slopes(optimizer, use_mup=False, seeds=1)
    assert sp_slopes[-1] > 0.5, sp_slopes  # SP: the hidden layer's update grows with the width
