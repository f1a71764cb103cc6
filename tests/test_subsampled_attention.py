"""Subsampled attention (SSA): a dense per-row transcription, an all-true mask equals full
attention, one-key rows, −∞ masking equals multiplicative masking, the fast backends."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import subsampled_attention


def _backend(name):
    if name == "cupy[host]":  # the CuPy code on NumPy arrays (a GPU run is checked by `refimpl check`)
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _inputs(seed, B=2, H=3, N=6, M=7, d_k=4, d_v=3, keep=0.4):  # noqa: N803
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, H, N, d_k))
    k = rng.standard_normal((B, H, M, d_k))
    v = rng.standard_normal((B, H, M, d_v))
    S = rng.random((B, H, N, M)) < keep
    S[..., 0] = True  # every row keeps key 0
    return q, k, v, S


def _dense_rows(q, k, v, S):  # noqa: N803
    """A_ij = exp(q_i·k_j/√d)/Σ_{l∈S_i} exp(q_i·k_l/√d) on S_i, row by row in plain loops."""
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for b, h, i in np.ndindex(q.shape[:-1]):
        kept = np.flatnonzero(S[b, h, i])
        logits = np.array([q[b, h, i] @ k[b, h, j] for j in kept]) / np.sqrt(q.shape[-1])
        weights = np.exp(logits - logits.max())
        out[b, h, i] = (weights / weights.sum()) @ v[b, h, kept]
    return out


def _full_attention(q, k, v):
    """softmax(Q Kᵀ/√d) V."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


def test_subsampled_attention_matches_dense_per_row_formula():
    args = _inputs(0)
    np.testing.assert_allclose(subsampled_attention(*args), _dense_rows(*args), rtol=1e-13, atol=1e-14)


def test_subsampled_attention_all_true_mask_is_full_attention():
    q, k, v, _ = _inputs(1)
    full = np.ones((*q.shape[:-1], k.shape[-2]), dtype=bool)
    np.testing.assert_allclose(
        subsampled_attention(q, k, v, full), _full_attention(q, k, v), rtol=1e-13, atol=1e-14
    )


def test_subsampled_attention_one_key_rows_copy_the_value_and_stop_query_gradient():
    q, k, v, _ = _inputs(2)
    rng = np.random.default_rng(3)
    choice = rng.integers(0, k.shape[-2], size=q.shape[:-1])
    S = np.zeros((*q.shape[:-1], k.shape[-2]), dtype=bool)
    np.put_along_axis(S, choice[..., None], True, axis=-1)
    out, pullback = refimpl.vjp("subsampled_attention", q, k, v, S)
    np.testing.assert_array_equal(out, np.take_along_axis(v, choice[..., None], axis=-2))
    g_q, g_k, _ = pullback(rng.standard_normal(out.shape))
    np.testing.assert_array_equal(g_q, 0.0)  # A_ij = 1 whatever the scores: no gradient to q or k
    np.testing.assert_array_equal(g_k, 0.0)


def test_subsampled_attention_minus_inf_masking_equals_multiplicative_masking():
    q, k, v, S = _inputs(4)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    # additive −∞ mask: softmax(s + log S)
    additive = np.where(S, scores, -np.inf)
    soft = np.exp(additive - additive.max(axis=-1, keepdims=True))
    soft /= soft.sum(axis=-1, keepdims=True)
    # multiplicative mask: S ⊙ exp(s) renormalized (scores are O(1): no overflow)
    product = S * np.exp(scores)
    product /= product.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(soft, product, rtol=1e-14)
    np.testing.assert_allclose(subsampled_attention(q, k, v, S), product @ v, rtol=1e-13, atol=1e-14)


def test_subsampled_attention_ignores_dropped_keys_and_values():
    q, k, v, S = _inputs(5)
    k2, v2 = k.copy(), v.copy()
    # change a key and value that row (0, 0, 0) does not see: its output is unchanged
    hidden = np.flatnonzero(~S[0, 0, 0])
    assert hidden.size > 0
    k2[0, 0, hidden] = 1e3
    v2[0, 0, hidden] = -1e3
    np.testing.assert_array_equal(
        subsampled_attention(q, k2, v2, S)[0, 0, 0], subsampled_attention(q, k, v, S)[0, 0, 0]
    )


def test_subsampled_attention_vjp_matches_finite_differences_of_dense_formula():
    q, k, v, S = _inputs(6, B=1, H=2, N=3, M=4, d_k=2, d_v=2, keep=0.6)
    g = np.random.default_rng(7).standard_normal((1, 2, 3, 2))
    _, pullback = refimpl.vjp("subsampled_attention", q, k, v, S)
    step = 1e-6
    for which, grad in enumerate(pullback(g)):
        direction = np.random.default_rng(8 + which).standard_normal(grad.shape)
        plus, minus = [q, k, v, S], [q, k, v, S]
        plus[which] = plus[which] + step * direction
        minus[which] = minus[which] - step * direction
        numeric = np.sum(g * (_dense_rows(*plus) - _dense_rows(*minus))) / (2 * step)
        assert np.sum(grad * direction) == pytest.approx(numeric, rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_subsampled_attention_backends_match_dense_formula_and_vjp(backend):
    args = _inputs(9)
    g = np.random.default_rng(10).standard_normal((*args[0].shape[:-1], args[2].shape[-1]))
    out, pullback = refimpl.vjp("subsampled_attention", *args, backend=_backend(backend))
    np.testing.assert_allclose(out, _dense_rows(*args), rtol=1e-12, atol=1e-13)
    _, reference_pullback = refimpl.vjp("subsampled_attention", *args)
    for got, want in zip(pullback(g), reference_pullback(g), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


def test_subsampled_attention_refuses_an_empty_row():
    q, k, v, S = _inputs(11)
    S[1, 2, 3] = False
    with pytest.raises(refimpl.InputError, match=r"S\[1, 2, 3\] is all False"):
        subsampled_attention(q, k, v, S)
