"""Linear self-attention (von Oswald et al.): the direct per-token formula, query rows excluded
from the keys and values, the fast backends against the same formula."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import linear_self_attention


def _backend(name):
    if name == "cupy[host]":  # the CuPy code on NumPy arrays (a GPU run is checked by `refimpl check`)
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _dense(E, W_Q, W_K, W_V, P, num_context):  # noqa: N803
    """The paper's eq. 6 token by token: e_j + P Σ_{i<N} (W_V e_i)(W_K e_i)ᵀ (W_Q e_j)."""
    out = np.array(E, dtype=np.float64)
    for b in range(E.shape[0]):
        for j in range(E.shape[1]):
            update = np.zeros(W_V.shape[0])
            for i in range(num_context):
                update += (W_V @ E[b, i]) * ((W_K @ E[b, i]) @ (W_Q @ E[b, j]))
            out[b, j] += P @ update
    return out


def _args(seed, B=2, T=7, D=5, Dk=3, Dv=4):  # noqa: N803
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((B, T, D)),
        rng.standard_normal((Dk, D)),
        rng.standard_normal((Dk, D)),
        rng.standard_normal((Dv, D)),
        rng.standard_normal((D, Dv)),
    )


@pytest.mark.parametrize("num_context", [1, 4, 7])
def test_linear_self_attention_matches_dense_per_token_formula(num_context):
    args = _args(0)
    np.testing.assert_allclose(
        linear_self_attention(*args, num_context=num_context),
        _dense(*args, num_context),
        rtol=1e-13,
        atol=1e-13,
    )


def test_linear_self_attention_hand_value():
    E = np.array([[[1.0, 2.0], [3.0, 0.0]]])
    eye = np.eye(2)
    # G = e_0 e_0ᵀ = [[1, 2], [2, 4]]: e_0 + G e_0 = [6, 12], e_1 + G e_1 = [6, 6]
    np.testing.assert_array_equal(
        linear_self_attention(E, eye, eye, eye, eye, num_context=1), [[[6, 12], [6, 6]]]
    )


def test_linear_self_attention_query_rows_are_not_keys():
    E, W_Q, W_K, W_V, P = _args(1)
    out = linear_self_attention(E, W_Q, W_K, W_V, P, num_context=4)
    changed = E.copy()
    changed[:, 5] += 10.0  # a query row: only its own output moves
    out_changed = linear_self_attention(changed, W_Q, W_K, W_V, P, num_context=4)
    np.testing.assert_array_equal(np.delete(out_changed, 5, axis=1), np.delete(out, 5, axis=1))
    assert np.abs(out_changed[:, 5] - out[:, 5]).max() > 1.0


def test_linear_self_attention_is_linear_in_P_and_W_V():
    E, W_Q, W_K, W_V, P = _args(2)
    delta = linear_self_attention(E, W_Q, W_K, W_V, P, num_context=5) - E
    doubled = linear_self_attention(E, W_Q, W_K, 2 * W_V, 3 * P, num_context=5) - E
    np.testing.assert_allclose(doubled, 6 * delta, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_linear_self_attention_backends_match_dense_formula_and_vjp(backend):
    args = _args(3)
    g = np.random.default_rng(4).standard_normal(args[0].shape)
    out, pullback = refimpl.vjp("linear_self_attention", *args, num_context=3, backend=_backend(backend))
    np.testing.assert_allclose(out, _dense(*args, 3), rtol=1e-12, atol=1e-12)
    _, reference_pullback = refimpl.vjp("linear_self_attention", *args, num_context=3)
    for got, want in zip(pullback(g), reference_pullback(g), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


def test_linear_self_attention_vjp_matches_finite_differences_of_dense_formula():
    args = _args(5, B=1, T=4, D=3, Dk=2, Dv=2)
    g = np.random.default_rng(6).standard_normal((1, 4, 3))
    _, pullback = refimpl.vjp("linear_self_attention", *args, num_context=3)
    grads = pullback(g)
    step = 1e-6
    for which, grad in enumerate(grads):
        direction = np.random.default_rng(7 + which).standard_normal(args[which].shape)
        plus = list(args)
        minus = list(args)
        plus[which] = args[which] + step * direction
        minus[which] = args[which] - step * direction
        numeric = np.sum(g * (_dense(*plus, 3) - _dense(*minus, 3))) / (2 * step)
        assert np.sum(grad * direction) == pytest.approx(numeric, rel=1e-7, abs=1e-9)
