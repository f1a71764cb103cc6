"""AdaQuant: the fake quantizer's ties and clamps, its straight-through VJP against the official
PyTorch sequence, the layer loss, bit allocation against brute force, bias correction."""

import itertools

import numpy as np
import pytest

import refimpl
from refimpl.quantization_sparsity import (
    adaquant_fake_quantize,
    adaquant_layer_loss,
    bit_allocation_knapsack,
    quantization_bias_correction,
)

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _quantize(x, range_, zero_point, backend="numpy", **kwargs):
    call = _backend(backend).get("adaquant_fake_quantize")
    return call(np.asarray(x, float), np.asarray(range_, float), np.asarray(zero_point, float), **kwargs)


def _vjp(x, range_, zero_point, g, backend="numpy", **kwargs):
    x_hat, pullback = refimpl.vjp(
        "adaquant_fake_quantize", x, range_, zero_point, backend=_backend(backend), **kwargs
    )
    return x_hat, pullback(g)


# -- the fake quantizer ----------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ties_round_half_to_even(backend, dtype):
    # s = 1.5/3 = 0.5: u = x/s = 0.5, 1.5, 2.5 → 0, 2, 2 (half away from zero: 1, 2, 3)
    x = np.array([[0.25, 0.75, 1.25]], dtype)
    got = _backend(backend).get("adaquant_fake_quantize")(
        x, np.array([1.5], dtype), np.zeros(1, dtype), num_bits=2
    )
    np.testing.assert_array_equal(got, [[0.0, 1.0, 1.0]])
    assert got.dtype == dtype
    # signed 2 bits, zero_point = qmin·s = −1 puts r_z at 0: u = −1.5, −0.5, 0.5 → −2, −0, 0
    signed = _backend(backend).get("adaquant_fake_quantize")(
        np.array([[-0.75, -0.25, 0.25]], dtype),
        np.array([1.5], dtype),
        np.array([-1.0], dtype),
        num_bits=2,
        signed=True,
    )
    np.testing.assert_array_equal(signed, [[-1.0, 0.0, 0.0]])


def test_the_integer_zero_point_rounds_half_to_even():
    # s = 0.5; qmin − zero_point/s = 0.5 → r_z = 0 (half away from zero: 1, which would map
    # x = −0.5 to −0.5 and clip 1.5 to 1.0)
    np.testing.assert_array_equal(_quantize([[-0.5, 1.5]], [1.5], [-0.25], num_bits=2), [[0.0, 1.5]])
    # 2.5 → r_z = 2: the grid is s·([0, 3] − 2) = [−1, 0.5] (with r_z = 3 it would end at 0)
    np.testing.assert_array_equal(_quantize([[-1.0, 0.5]], [1.5], [-1.25], num_bits=2), [[-1.0, 0.5]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_straight_through_gradient_by_hand(backend):
    # s = 0.5, zero_point = −0.2: qmin − zero_point/s = 0.4 → r_z = 0 (its clamp inactive)
    # x = 0.3, 0.9, 2.0, −0.4: u = 0.6, 1.8, 4, −0.8; q = 1, 2, 3, 0; inside, inside, out, out
    x = np.array([[0.3, 0.9, 2.0, -0.4]])
    x_hat, (g_x, g_range, g_zero_point) = _vjp(
        x, np.array([1.5]), np.array([-0.2]), np.ones((1, 4)), backend, num_bits=2
    )
    np.testing.assert_allclose(x_hat, [[0.5, 1.0, 1.5, 0.0]], rtol=1e-15)
    np.testing.assert_array_equal(g_x, [[1.0, 1.0, 0.0, 0.0]])
    # ∂x̂/∂s: inside (q − r_z) − x/s = 0.4, 0.2; outside (q − r_z) − zero_point/s = 3.4, 0.4
    np.testing.assert_allclose(g_range, [(0.4 + 0.2 + 3.4 + 0.4) / 3], rtol=1e-14)
    np.testing.assert_allclose(g_zero_point, [2.0], rtol=1e-15)  # 1 per outside element


def test_gradient_passes_at_the_grid_ends_and_not_beyond():
    # u = 3 = qmax and u = 0 = qmin are inside (torch.clamp's mask includes both ends)
    x = np.array([[1.5, 0.0, 1.75, -0.25]])
    _, (g_x, _, g_zero_point) = _vjp(x, np.array([1.5]), np.array([0.0]), np.ones((1, 4)), num_bits=2)
    np.testing.assert_array_equal(g_x, [[1.0, 1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(g_zero_point, [2.0])


def test_range_clamp_stops_the_range_gradient_but_not_at_its_ends():
    for range_, passes in ((1e-7, False), (1e-6, True), (1.0, True), (1e5, True), (2e5, False)):
        s = min(max(range_, 1e-6), 1e5) / 3
        x = np.array([[0.3, 1.1, 2.6, 4.0]]) * s  # u = 0.3, 1.1, 2.6 inside; 4 outside
        x_hat, (_, g_range, _) = _vjp(x, np.array([range_]), np.array([0.0]), np.ones((1, 4)), num_bits=2)
        np.testing.assert_allclose(x_hat, s * np.array([[0.0, 1.0, 3.0, 3.0]]), rtol=1e-14)
        # inside (q − u): −0.3, −0.1, 0.4; outside (q − r_z) − zero_point/s = 3; over qmax − qmin = 3
        np.testing.assert_allclose(g_range, [1.0 if passes else 0.0], rtol=1e-9)


def test_zero_point_outside_the_grid_is_clamped_and_gets_no_gradient():
    # s = 0.5, zero_point = −3.1: qmin − zero_point/s = 6.2 → 6, clamped to r_z = qmax = 3
    x = np.array([[0.3, 1.1, -0.9, 2.2]])  # u = x/s + 3 = 3.6, 5.2, 1.2, 7.4
    x_hat, (g_x, g_range, g_zero_point) = _vjp(
        x, np.array([1.5]), np.array([-3.1]), np.ones((1, 4)), num_bits=2
    )
    np.testing.assert_allclose(x_hat, 0.5 * (np.array([[3.0, 3.0, 1.0, 3.0]]) - 3), atol=0)
    np.testing.assert_array_equal(g_x, [[0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(g_zero_point, [0.0])
    # outside with r_z clamped: ∂x̂/∂s = q − r_z = 0; inside: (1 − 3) − (−1.8) = −0.2
    np.testing.assert_allclose(g_range, [-0.2 / 3], rtol=1e-12)


def test_per_tensor_equals_per_channel_with_equal_parameters_and_sums_its_gradient():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6))
    g = rng.standard_normal((4, 6))
    tensor_out, (tensor_g_x, tensor_range, tensor_zp) = _vjp(
        x, np.array([3.0]), np.array([-1.3]), g, num_bits=3
    )
    channel_out, (channel_g_x, channel_range, channel_zp) = _vjp(
        x, np.full(4, 3.0), np.full(4, -1.3), g, num_bits=3
    )
    np.testing.assert_array_equal(tensor_out, channel_out)
    np.testing.assert_array_equal(tensor_g_x, channel_g_x)
    np.testing.assert_allclose(tensor_range, [channel_range.sum()], rtol=1e-13)
    np.testing.assert_allclose(tensor_zp, [channel_zp.sum()], rtol=1e-13)


@pytest.mark.parametrize("signed", [False, True])
def test_quantized_values_are_fixed_points_and_use_at_most_2_to_the_b_levels(signed):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 200)) * 2
    range_, zero_point = x.max(axis=1) - x.min(axis=1), x.min(axis=1)
    once = _quantize(x, range_, zero_point, num_bits=3, signed=signed)
    np.testing.assert_allclose(
        _quantize(once, range_, zero_point, num_bits=3, signed=signed), once, atol=1e-13
    )
    for row in once:
        assert len(np.unique(row)) <= 8
    # min/max ranges: the rounded zero point shifts the grid by at most s/2, so the error ≤ s
    assert np.all(np.abs(once - x).max(axis=1) <= range_ / 7 * (1 + 1e-12))


try:
    import torch
except ImportError:  # pragma: no cover - torch is an optional test dependency
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="the official code runs on PyTorch")


def _official_quantize_with_grad(x, range_, zero_point, num_bits, signed):
    """The official quantize_with_grad (QZP = True), transcribed operation by operation, with
    its straight-through Round (CalibTIP models/modules/quantize.py)."""

    class Round(torch.autograd.Function):
        @staticmethod
        def forward(ctx, values):
            return values.round()

        @staticmethod
        def backward(ctx, grad):
            return grad

    qmin = -(2.0 ** (num_bits - 1)) if signed else 0.0
    qmax = qmin + 2.0**num_bits - 1.0
    running_range = range_.clamp(min=1e-6, max=1e5)
    scale = running_range / (qmax - qmin)
    running_zero_point_round = Round.apply(qmin - zero_point / scale)
    zero_point = (qmin - running_zero_point_round.clamp(qmin, qmax)) * scale
    output = (x + (qmin * scale - zero_point)) / scale
    output = Round.apply(output.clamp(qmin, qmax))
    return output * scale + (zero_point - qmin * scale)


@needs_torch
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("num_bits", "signed", "per_channel"), [(2, False, True), (4, True, False), (8, False, True)]
)
def test_matches_the_official_pytorch_sequence_and_its_autograd(backend, num_bits, signed, per_channel):
    rng = np.random.default_rng(num_bits)
    x = rng.standard_normal((3, 9)) * 1.5
    groups = 3 if per_channel else 1
    range_ = rng.uniform(0.5, 3.0, size=groups)
    zero_point = -rng.uniform(0.0, 1.5, size=groups) + (0.5 if signed else 0.0)
    g = rng.standard_normal((3, 9))
    x_hat, grads = _vjp(x, range_, zero_point, g, backend, num_bits=num_bits, signed=signed)
    tx, tr, tz = (torch.tensor(a, requires_grad=True) for a in (x, range_, zero_point))
    shaped = (tr[:, None], tz[:, None])
    official = _official_quantize_with_grad(tx, *shaped, num_bits, signed)
    official.backward(torch.from_numpy(g))
    np.testing.assert_allclose(x_hat, official.detach().numpy(), rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(grads, (tx.grad, tr.grad, tz.grad), strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-12)


# -- the layer loss ----------------------------------------------------------------------------
def _layer(seed=0, relu=False, per_channel=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, 4))
    W = rng.standard_normal((3, 4)) * 0.5
    Y = X @ W.T + 0.1
    groups = 3 if per_channel else 1
    w_range = np.full(groups, 2.0) if not per_channel else W.max(1) - np.minimum(W.min(1), 0)
    w_zero_point = np.minimum(W.min(axis=1), 0) if per_channel else np.array([W.min()])
    params = (
        X,
        Y,
        W,
        rng.standard_normal(W.shape) * 1e-3,
        rng.standard_normal(3) * 0.1,  # no output exactly at the ReLU's kink
        w_range,
        w_zero_point,
        np.array([X.max() - X.min()]),
        np.array([X.min()]),
    )
    return params, {"num_bits_weight": 4, "num_bits_input": 4, "signed": False, "relu": relu}


def test_layer_loss_is_the_mse_of_the_quantized_layer():
    params, kwargs = _layer()
    X, Y, W, V, b, w_range, w_zero_point, x_range, x_zero_point = params
    x_hat = adaquant_fake_quantize(X, x_range, x_zero_point, num_bits=4)
    w_hat = adaquant_fake_quantize(W + V, w_range, w_zero_point, num_bits=4)
    expected = np.mean((Y - x_hat @ w_hat.T - b) ** 2)
    np.testing.assert_allclose(adaquant_layer_loss(*params, **kwargs), expected, rtol=1e-14)
    relu_loss = adaquant_layer_loss(*params, **{**kwargs, "relu": True})
    np.testing.assert_allclose(
        relu_loss, np.mean((np.maximum(Y, 0) - np.maximum(x_hat @ w_hat.T + b, 0)) ** 2), rtol=1e-14
    )


@pytest.mark.parametrize("relu", [False, True])
def test_layer_loss_bias_gradient_is_the_exact_derivative(relu):
    # the loss is smooth (piecewise quadratic) in b: central differences agree
    params, kwargs = _layer(seed=1, relu=relu)
    _, pullback = refimpl.vjp(adaquant_layer_loss, *params, **kwargs)
    g_b = pullback(np.array(1.0))[1]
    step = 1e-6
    for m in range(3):
        plus, minus = list(params), list(params)
        plus[4], minus[4] = params[4].copy(), params[4].copy()
        plus[4][m] += step
        minus[4][m] -= step
        fd = (adaquant_layer_loss(*plus, **kwargs) - adaquant_layer_loss(*minus, **kwargs)) / (2 * step)
        np.testing.assert_allclose(g_b[m], fd, rtol=1e-6, atol=1e-10)


@needs_torch
@pytest.mark.parametrize(("relu", "per_channel"), [(False, True), (True, False)])
def test_layer_loss_gradients_match_official_quantizers_under_pytorch_autograd(relu, per_channel):
    params, kwargs = _layer(seed=2, relu=relu, per_channel=per_channel)
    _, pullback = refimpl.vjp(adaquant_layer_loss, *params, **kwargs)
    grads = pullback(np.array(1.0))
    X, Y, W, *rest = (torch.tensor(a) for a in params)
    V, b, w_range, w_zero_point, x_range, x_zero_point = (t.requires_grad_() for t in rest)
    w_hat = _official_quantize_with_grad(W + V, w_range[:, None], w_zero_point[:, None], 4, False)
    x_hat = _official_quantize_with_grad(X, x_range[:, None], x_zero_point[:, None], 4, False)
    out = torch.nn.functional.linear(x_hat, w_hat, b)
    if relu:
        loss = torch.nn.functional.mse_loss(torch.relu(out), torch.relu(Y))
    else:
        loss = torch.nn.functional.mse_loss(out, Y)
    loss.backward()
    np.testing.assert_allclose(adaquant_layer_loss(*params, **kwargs), loss.item(), rtol=1e-13)
    for mine, theirs in zip(grads, (V, b, w_range, w_zero_point, x_range, x_zero_point), strict=True):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_calibration_with_the_official_learning_rates_lowers_the_loss():
    # a few Adam steps (lr: weights 1e-5, bias 1e-3, input quantizer 1e-1, weight quantizer 1e-3)
    params, kwargs = _layer(seed=4)
    params = [np.array(p, dtype=float) for p in params]
    rates = {3: 1e-5, 4: 1e-3, 5: 1e-3, 6: 1e-3, 7: 1e-1, 8: 1e-1}
    first = {i: np.zeros_like(params[i]) for i in rates}
    second = {i: np.zeros_like(params[i]) for i in rates}
    start = float(adaquant_layer_loss(*params, **kwargs))
    for t in range(1, 101):
        _, pullback = refimpl.vjp(adaquant_layer_loss, *params, **kwargs)
        for i, g in zip(rates, pullback(np.array(1.0)), strict=True):
            first[i] = 0.9 * first[i] + 0.1 * g
            second[i] = 0.999 * second[i] + 0.001 * g * g
            update = (first[i] / (1 - 0.9**t)) / (np.sqrt(second[i] / (1 - 0.999**t)) + 1e-8)
            params[i] = params[i] - rates[i] * update
    assert float(adaquant_layer_loss(*params, **kwargs)) < 0.9 * start


# -- bit allocation ----------------------------------------------------------------------------
def _brute_force(costs, sizes, target):
    """Every allocation; the least cost (summed in layer order, as the DP does), then the
    smallest total, then the lowest index in the last layer, the one before, ..."""
    layers, options = costs.shape
    best = None
    for choice in itertools.product(range(options), repeat=layers):
        total = sum(int(sizes[l, k]) for l, k in enumerate(choice))
        if total < target or any(np.isinf(costs[l, k]) for l, k in enumerate(choice)):
            continue
        cost = 0.0
        for l, k in enumerate(choice):
            cost = cost + float(costs[l, k])
        key = (cost, total, tuple(reversed(choice)))
        if best is None or key < best[0]:
            best = (key, choice)
    (cost, total, _), choice = best
    return list(choice), cost, total


@pytest.mark.parametrize("seed", range(12))
def test_knapsack_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    layers, options = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    if seed % 2:  # small integers: many exact ties, which the stated rule must break the same way
        costs = rng.integers(0, 4, size=(layers, options)).astype(float)
    else:
        costs = rng.exponential(size=(layers, options))
    sizes = rng.integers(0, 6, size=(layers, options))
    target = int(rng.integers(0, sizes.max(axis=1).sum() + 1))
    choice, total, saved = bit_allocation_knapsack(costs, sizes, budget=target)
    expected_choice, expected_cost, expected_total = _brute_force(costs, sizes, target)
    assert choice.tolist() == expected_choice
    assert float(total) == expected_cost
    assert int(saved) == expected_total >= target


def test_knapsack_known_value_and_tie_rule():
    degradation = np.array([[0.0, 0.2, 0.9], [0.0, 0.5, 0.6]])
    saved = np.array([[0, 4, 6], [0, 4, 6]])
    choice, total, saved_total = bit_allocation_knapsack(degradation, saved, budget=8)
    assert choice.tolist() == [1, 1] and int(saved_total) == 8
    np.testing.assert_allclose(total, 0.7, rtol=1e-15)
    # (1, 1), (0, 2), (2, 0) all cost 2 and save 2: the last layer's lowest index, 0, wins
    ties = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    choice, total, _ = bit_allocation_knapsack(ties, np.array([[0, 1, 2], [0, 1, 2]]), budget=2)
    assert choice.tolist() == [2, 0] and float(total) == 2.0
    # equal cost, different totals: the smaller total (budget 1: (0, 1) saves 1, (0, 2) saves 2)
    choice, _, saved_total = bit_allocation_knapsack(
        np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[0, 1], [0, 2]]), budget=1
    )
    assert int(saved_total) == 1 and choice.tolist() == [1, 0]


def test_knapsack_optimum_grows_with_the_budget_and_missing_options_are_never_chosen():
    rng = np.random.default_rng(7)
    degradation = rng.exponential(size=(5, 4))
    degradation[:, 0] = 0.0
    degradation[2, 3] = np.inf
    saved = rng.integers(0, 7, size=(5, 4))
    saved[:, 0] = 0
    reachable = int(np.where(np.isfinite(degradation), saved, 0).max(axis=1).sum())
    totals = []
    for budget in range(reachable + 1):
        choice, total, saved_total = bit_allocation_knapsack(degradation, saved, budget=budget)
        assert choice[2] != 3 and int(saved_total) >= budget
        totals.append(float(total))
    assert totals == sorted(totals)
    with pytest.raises(refimpl.InputError, match="at most"):
        bit_allocation_knapsack(degradation, saved, budget=reachable + 1)


# -- bias correction ---------------------------------------------------------------------------
def test_bias_correction_known_value_and_zero_mean_error_after():
    y_fp = np.array([[1.0, 2.0], [3.0, 4.0]])
    y_q = np.array([[0.5, 2.0], [2.5, 5.0]])
    np.testing.assert_array_equal(quantization_bias_correction(np.zeros(2), y_fp, y_q), [0.5, -0.5])
    rng = np.random.default_rng(0)
    y_fp = rng.standard_normal((4, 3, 5, 5))
    y_q = y_fp * 0.9 + rng.standard_normal(3)[None, :, None, None]
    bias = rng.standard_normal(3)
    corrected = quantization_bias_correction(bias, y_fp, y_q)
    # the corrected quantized layer has the full-precision layer's channel means
    shifted = y_q + (corrected - bias)[None, :, None, None]
    np.testing.assert_allclose(shifted.mean(axis=(0, 2, 3)), y_fp.mean(axis=(0, 2, 3)), atol=1e-14)


def test_bias_correction_refuses_outputs_without_a_channel_axis():
    with pytest.raises(refimpl.InputError, match="rank >= 2"):
        quantization_bias_correction(np.zeros(3), np.ones(3), np.ones(3))
    with pytest.raises(refimpl.InputError, match="3 channels on axis 1"):
        quantization_bias_correction(np.zeros(3), np.ones((3, 2)), np.ones((3, 2)))
