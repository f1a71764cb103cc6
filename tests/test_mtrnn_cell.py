"""MTRNN cell: unrolled sequences against a hand loop, BPTT against finite differences, τ limits."""

import numpy as np

import refimpl
from refimpl.layers import mtrnn_cell

B, D, Z, U, T = 2, 4, 3, 2, 5


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((D, D)) / 2,
        rng.standard_normal((D, Z)) / 2,
        rng.standard_normal((D, U)) / 2,
        rng.standard_normal(D) / 2,
    )


def _sequence_inputs(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, B, Z)), rng.standard_normal((T, B, U))


def _unroll(weights, zs, d_ups, tau, h0):
    """T steps of the op from h_0 and d_0 = tanh(h_0)."""
    h, d = h0, np.tanh(h0)
    outputs = []
    for z, d_up in zip(zs, d_ups):
        h, d = mtrnn_cell(h, d, z, d_up, *weights, tau=tau)
        outputs.append(d)
    return np.stack(outputs)


def test_mtrnn_unrolled_sequence_matches_a_hand_loop():
    w_dd, w_dz, w_up, b = _weights()
    zs, d_ups = _sequence_inputs()
    tau = 4.0
    h0 = np.random.default_rng(2).standard_normal((B, D))
    got = _unroll((w_dd, w_dz, w_up, b), zs, d_ups, tau, h0)
    # h_t = (1 − 1/τ) h_{t−1} + (1/τ)(W_dd d_{t−1} + W_dz z_t + W_up d^{l+1}_t + b), per row
    for row in range(B):
        h, d = h0[row].copy(), np.tanh(h0[row])
        for t in range(T):
            u = np.zeros(D)
            for i in range(D):
                u[i] = b[i]
                u[i] += sum(w_dd[i, j] * d[j] for j in range(D))
                u[i] += sum(w_dz[i, j] * zs[t, row, j] for j in range(Z))
                u[i] += sum(w_up[i, j] * d_ups[t, row, j] for j in range(U))
            h = (1 - 1 / tau) * h + u / tau
            d = np.tanh(h)
            np.testing.assert_allclose(got[t, row], d, atol=1e-14)


def _unrolled_vjp(weights, zs, d_ups, tau, h0, g_ds):
    """BPTT by chaining the op's pullbacks: the cotangents of (h, d) flow back one step at a time."""
    h, d = h0, np.tanh(h0)
    pullbacks = []
    for z, d_up in zip(zs, d_ups):
        (h, d), pullback = refimpl.vjp(mtrnn_cell, h, d, z, d_up, *weights, tau=tau)
        pullbacks.append(pullback)
    g_h, g_d = np.zeros((B, D)), np.zeros((B, D))
    g_weights = [np.zeros_like(w) for w in weights]
    g_zs = np.zeros_like(zs)
    for t in reversed(range(T)):
        grads = pullbacks[t]((g_h, g_d + g_ds[t]))
        g_h, g_d, g_zs[t] = grads[0], grads[1], grads[2]
        for k in range(4):
            g_weights[k] += grads[4 + k]
    g_h0 = g_h + g_d * (1 - np.tanh(h0) ** 2)  # d_0 = tanh(h_0)
    return g_h0, g_zs, g_weights


def test_mtrnn_bptt_through_the_unrolled_sequence_matches_finite_differences():
    weights = _weights(3)
    zs, d_ups = _sequence_inputs(4)
    rng = np.random.default_rng(5)
    h0 = rng.standard_normal((B, D))
    g_ds = rng.standard_normal((T, B, D))
    tau = 3.0
    g_h0, g_zs, g_weights = _unrolled_vjp(weights, zs, d_ups, tau, h0, g_ds)

    def objective(weights=weights, zs=zs, h0=h0):
        return float(np.sum(_unroll(weights, zs, d_ups, tau, h0) * g_ds))

    step = 1e-6
    for k in range(4):
        direction = rng.standard_normal(weights[k].shape)
        plus = [w + step * direction if i == k else w for i, w in enumerate(weights)]
        minus = [w - step * direction if i == k else w for i, w in enumerate(weights)]
        fd = (objective(weights=plus) - objective(weights=minus)) / (2 * step)
        np.testing.assert_allclose(np.sum(g_weights[k] * direction), fd, rtol=1e-7, atol=1e-9)
    direction = rng.standard_normal(zs.shape)
    fd = (objective(zs=zs + step * direction) - objective(zs=zs - step * direction)) / (2 * step)
    np.testing.assert_allclose(np.sum(g_zs * direction), fd, rtol=1e-7, atol=1e-9)
    direction = rng.standard_normal(h0.shape)
    fd = (objective(h0=h0 + step * direction) - objective(h0=h0 - step * direction)) / (2 * step)
    np.testing.assert_allclose(np.sum(g_h0 * direction), fd, rtol=1e-7, atol=1e-9)


def test_mtrnn_tau_one_is_a_plain_tanh_rnn_and_forgets_h_prev():
    w_dd, w_dz, w_up, b = _weights(6)
    rng = np.random.default_rng(7)
    h_prev, d_prev = rng.standard_normal((B, D)), rng.standard_normal((B, D))
    z, d_up = rng.standard_normal((B, Z)), rng.standard_normal((B, U))
    (h, d), pullback = refimpl.vjp(mtrnn_cell, h_prev, d_prev, z, d_up, w_dd, w_dz, w_up, b, tau=1.0)
    np.testing.assert_allclose(d, np.tanh(d_prev @ w_dd.T + z @ w_dz.T + d_up @ w_up.T + b), atol=1e-15)
    g_h_prev = pullback((np.ones((B, D)), np.ones((B, D))))[0]
    np.testing.assert_array_equal(g_h_prev, 0.0)


def test_mtrnn_large_tau_keeps_h_close_to_h_prev_and_passes_the_state_cotangent():
    weights = _weights(8)
    rng = np.random.default_rng(9)
    h_prev, d_prev = rng.standard_normal((B, D)), rng.standard_normal((B, D))
    z, d_up = rng.standard_normal((B, Z)), rng.standard_normal((B, U))
    tau = 1e6
    (h, _), pullback = refimpl.vjp(mtrnn_cell, h_prev, d_prev, z, d_up, *weights, tau=tau)
    assert np.max(np.abs(h - h_prev)) < 1e-5
    g_h = rng.standard_normal((B, D))
    grads = pullback((g_h, np.zeros((B, D))))
    np.testing.assert_allclose(grads[0], (1 - 1 / tau) * g_h, rtol=1e-15)
    np.testing.assert_allclose(grads[7], g_h.sum(axis=0) / tau, rtol=1e-12)


def test_mtrnn_hand_value():
    one = np.ones((1, 1))
    # u = 0.5·1 + 2·1 + (−1)·1 + 0.25 = 1.75; h = (1 − 1/2)·3 + 1.75/2 = 2.375
    h, d = mtrnn_cell(3 * one, 0.5 * one, 2 * one, -one, one, one, one, np.array([0.25]), tau=2.0)
    np.testing.assert_allclose(h, [[2.375]], atol=1e-15)
    np.testing.assert_allclose(d, [[np.tanh(2.375)]], atol=1e-15)
