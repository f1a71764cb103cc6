"""ViR retention: hand values, the three forms agree, the decay constants, underflow, the layer."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import (
    multiscale_retention,
    retention_chunkwise,
    retention_decay,
    retention_parallel,
    retention_recurrent,
)


def _backend(name):
    if name == "cupy[host]":  # the CuPy code on NumPy arrays (a GPU run is checked by `refimpl check`)
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


FORMS = {
    "parallel": lambda *a, **k: retention_parallel(*a, **k),
    "recurrent": lambda *a, **k: retention_recurrent(*a, **k),
    "chunkwise L=3": lambda *a, **k: retention_chunkwise(*a, chunk_size=3, **k),
}


def _qkv(seed, B=2, H=3, N=11, d_k=4, d_v=5):  # noqa: N803
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((B, H, N, d_k)),
        rng.standard_normal((B, H, N, d_k)),
        rng.standard_normal((B, H, N, d_v)),
    )


def test_retention_parallel_hand_computed_value():
    # one head, γ = 0.5, N = 2: D = [[1, 0], [0.5, 1]]
    Q = np.array([[[[1.0, 2.0], [0.0, 1.0]]]])
    K = np.array([[[[1.0, 0.0], [3.0, -1.0]]]])
    V = np.array([[[[2.0], [-1.0]]]])
    # QKᵀ = [[1, 1], [0, −1]]; M = [[1, 0], [0, −1]]; O = M V = [2, 1]
    np.testing.assert_allclose(retention_parallel(Q, K, V, np.array([0.5])).ravel(), [2.0, 1.0])
    # Q_1·K_0 = 0 above, so γ did not show; now Q_1·K_0 = 1, Q_1·K_1 = 2: o_1 = γ·1·2 + 2·(−1)
    Q2 = np.array([[[[1.0, 2.0], [1.0, 1.0]]]])
    for gamma in (0.5, 1.0, 0.25):
        expected = [2.0, gamma * 1.0 * 2.0 + 2.0 * -1.0]
        for name, form in FORMS.items():
            got = form(Q2, K, V, np.array([gamma])).ravel()
            np.testing.assert_allclose(got, expected, rtol=1e-15, err_msg=name)


def test_retention_default_decays_are_retnet_constants():
    np.testing.assert_array_equal(retention_decay(4), [31 / 32, 63 / 64, 127 / 128, 255 / 256])
    Q, K, V = _qkv(0, H=4)
    for name, form in FORMS.items():
        np.testing.assert_allclose(form(Q, K, V), form(Q, K, V, retention_decay(4)), rtol=1e-14, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy[host]"])
def test_retention_three_forms_agree_in_float64(backend):
    backend = _backend(backend)
    Q, K, V = _qkv(1, N=13)
    gamma = np.array([0.3, 0.9, 1.0])
    cotangent = np.random.default_rng(2).standard_normal(V.shape)
    parallel, pullback = refimpl.vjp("retention_parallel", Q, K, V, gamma, backend=backend)
    grads = pullback(cotangent)
    scale = np.abs(parallel).max()
    runs = [("recurrent", "retention_recurrent", {})]
    runs += [(f"chunk {L}", "retention_chunkwise", {"chunk_size": L}) for L in (1, 2, 4, 5, 13, 40)]
    for label, name, kwargs in runs:
        out, pull = refimpl.vjp(name, Q, K, V, gamma, backend=backend, **kwargs)
        assert np.abs(out - parallel).max() <= 1e-14 * scale, label
        for got, expected in zip(pull(cotangent), grads, strict=True):
            assert np.abs(got - expected).max() <= 1e-14 * np.abs(expected).max(), label


@pytest.mark.parametrize("form", sorted(FORMS))
def test_retention_is_bilinear_in_q_k_and_linear_in_v(form):
    # O is linear in V and in Q and in K: ⟨Q̄, Q⟩ = ⟨K̄, K⟩ = ⟨V̄, V⟩ = ⟨G, O⟩ (Euler)
    Q, K, V = _qkv(3)
    op_name, kwargs = {
        "parallel": ("retention_parallel", {}),
        "recurrent": ("retention_recurrent", {}),
        "chunkwise L=3": ("retention_chunkwise", {"chunk_size": 3}),
    }[form]
    out, pullback = refimpl.vjp(op_name, Q, K, V, **kwargs)
    G = np.random.default_rng(4).standard_normal(out.shape)
    g_Q, g_K, g_V = pullback(G)
    total = np.sum(G * out)
    for g, x in ((g_Q, Q), (g_K, K), (g_V, V)):
        np.testing.assert_allclose(np.sum(g * x), total, rtol=1e-12)


def test_retention_without_decay_is_causal_linear_attention():
    Q, K, V = _qkv(5, H=2)
    expected = np.tril(Q @ np.swapaxes(K, -1, -2)) @ V
    for name, form in FORMS.items():
        np.testing.assert_allclose(form(Q, K, V, np.ones(2)), expected, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy[host]"])
def test_retention_long_sequence_with_underflowing_decay_is_finite(dtype, backend):
    backend = _backend(backend)
    # γ = 0.01: γ^n is 0 beyond n ≈ 23 (float32) and n ≈ 162 (float64); N = 400
    Q, K, V = (a.astype(dtype) for a in _qkv(6, B=1, H=2, N=400, d_k=2, d_v=2))
    gamma = np.array([0.01, 1.0], dtype=dtype)
    reference = None
    for name, kwargs in (
        ("retention_parallel", {}),
        ("retention_recurrent", {}),
        ("retention_chunkwise", {"chunk_size": 64}),
    ):
        out, pullback = refimpl.vjp(name, Q, K, V, gamma, backend=backend, **kwargs)
        grads = pullback(np.ones_like(out))
        assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
        assert np.all(np.isfinite(out)) and all(np.all(np.isfinite(g)) for g in grads), name
        # the γ = 0.01 head: o_n = (q_n·k_n) v_n + 0.01 (q_n·k_{n−1}) v_{n−1} + O(1e-4)
        fast_head = out[0, 0].astype(np.float64)
        q, k, v = (a[0, 0].astype(np.float64) for a in (Q, K, V))
        two_terms = np.sum(q * k, axis=1)[:, None] * v
        two_terms[1:] += 0.01 * np.sum(q[1:] * k[:-1], axis=1)[:, None] * v[:-1]
        np.testing.assert_allclose(fast_head, two_terms, atol=1e-3)
        reference = out if reference is None else reference
        np.testing.assert_allclose(out, reference, rtol=1e-3 if dtype == np.float32 else 1e-12, atol=1e-3)


def test_retention_refuses_bad_decays_and_chunk_lengths():
    Q, K, V = _qkv(7, H=2, N=4)
    with pytest.raises(refimpl.InputError, match="0 < γ ≤ 1"):
        retention_parallel(Q, K, V, np.array([0.5, 0.0]))
    with pytest.raises(refimpl.InputError, match="head 0"):
        retention_recurrent(Q, K, V, np.array([1.5, 0.5]))
    with pytest.raises(refimpl.InputError, match="chunk_size"):
        retention_chunkwise(Q, K, V, chunk_size=0)
    with pytest.raises(refimpl.InputError, match="chunk_size"):
        retention_chunkwise(Q, K, V)


# -- multiscale_retention -----------------------------------------------------------------
def _layer(seed, B=2, N=5, M=6, H=2, d_k=3, d_v=4):  # noqa: N803
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, N, M))
    W_Q, W_K = (rng.standard_normal((H * d_k, M)) / np.sqrt(M) for _ in range(2))
    W_V, W_G = (rng.standard_normal((H * d_v, M)) / np.sqrt(M) for _ in range(2))
    W_O = rng.standard_normal((M, H * d_v)) / np.sqrt(H * d_v)
    return x, W_Q, W_K, W_V, W_G, W_O


def _layer_by_hand(x, W_Q, W_K, W_V, W_G, W_O, H, eps):  # noqa: N803
    B, N, _ = x.shape

    def heads(a):
        return a.reshape(B, N, H, -1).transpose(0, 2, 1, 3)

    O = retention_parallel(heads(x @ W_Q.T), heads(x @ W_K.T), heads(x @ W_V.T))
    O_hat = (O - O.mean(-1, keepdims=True)) / np.sqrt(O.var(-1, keepdims=True) + eps)
    U = x @ W_G.T
    gate = U / (1 + np.exp(-U))
    return (gate * O_hat.transpose(0, 2, 1, 3).reshape(B, N, -1)) @ W_O.T


def test_multiscale_retention_matches_its_definition_from_the_parallel_form():
    args = _layer(8)
    y = multiscale_retention(*args, num_heads=2, eps=1e-5, normalize_decay=False, normalize_scores=False)
    np.testing.assert_allclose(y, _layer_by_hand(*args, H=2, eps=1e-5), rtol=1e-13, atol=1e-15)


def test_multiscale_retention_normalizations_change_values_only_through_eps():
    args = _layer(9)
    runs = {
        (d, s): multiscale_retention(*args, num_heads=2, eps=1e-14, normalize_decay=d, normalize_scores=s)
        for d in (False, True)
        for s in (False, True)
    }
    for key, y in runs.items():  # GroupNorm removes each row's positive scale
        np.testing.assert_allclose(y, runs[(False, False)], rtol=1e-6, atol=1e-9, err_msg=str(key))
    # with a large eps the row scales show
    plain = multiscale_retention(*args, num_heads=2, eps=1.0, normalize_decay=False, normalize_scores=False)
    normed = multiscale_retention(*args, num_heads=2, eps=1.0, normalize_decay=True, normalize_scores=False)
    assert np.abs(plain - normed).max() > 1e-3


def test_multiscale_retention_gradient_is_orthogonal_to_value_scaling():
    # y is invariant to W_V → c·W_V up to eps (GroupNorm per head): ⟨W̄_V, W_V⟩ ≈ 0, and the
    # gate and output weights are 1-homogeneous: ⟨W̄_O, W_O⟩ = ⟨Ȳ, y⟩
    args = _layer(10)
    y, pullback = refimpl.vjp(
        multiscale_retention, *args, num_heads=2, eps=1e-12, normalize_decay=True, normalize_scores=True
    )
    G = np.random.default_rng(11).standard_normal(y.shape)
    g_x, g_W_Q, g_W_K, g_W_V, g_W_G, g_W_O = pullback(G)
    assert abs(np.sum(g_W_V * args[3])) < 1e-8 * np.abs(g_W_V).sum()
    np.testing.assert_allclose(np.sum(g_W_O * args[5]), np.sum(G * y), rtol=1e-12)
    assert np.abs(g_x).max() > 1e-3 and np.abs(g_W_Q).max() > 1e-3 and np.abs(g_W_G).max() > 1e-3


def test_multiscale_retention_normalization_flags_and_eps_are_required():
    args = _layer(12)
    with pytest.raises(refimpl.InputError, match="normalize_decay"):
        multiscale_retention(*args, num_heads=2, eps=1e-5, normalize_scores=False)
    with pytest.raises(refimpl.InputError, match="normalize_scores"):
        multiscale_retention(*args, num_heads=2, eps=1e-5, normalize_decay=False)
    with pytest.raises(refimpl.InputError, match="eps"):
        multiscale_retention(*args, num_heads=2, normalize_decay=False, normalize_scores=False)
    with pytest.raises(refimpl.InputError, match="divisible by num_heads = 4"):
        multiscale_retention(*args, num_heads=4, eps=1e-5, normalize_decay=False, normalize_scores=False)


def test_multiscale_retention_keeps_float32():
    args = tuple(a.astype(np.float32) for a in _layer(13))
    y = multiscale_retention(*args, num_heads=2, eps=1e-5, normalize_decay=True, normalize_scores=True)
    y64 = multiscale_retention(
        *(a.astype(np.float64) for a in args),
        num_heads=2,
        eps=1e-5,
        normalize_decay=True,
        normalize_scores=True,
    )
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, y64, rtol=1e-4, atol=1e-5)
