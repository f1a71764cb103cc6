"""OFQ: StatsQ's levels and ties, the STE, CGA's boundary mask, QKR; the official code re-derived."""

import numpy as np
import pytest

import refimpl
from refimpl.quantization_sparsity import cga_boundary_mask, qkr_quantize, statsq_quantize
from refimpl.quantization_sparsity.ofq import statsq_levels, statsq_scale
from refimpl_conformance.cases.quantization_sparsity.ofq import boundary_row

BACKENDS = ["numpy", "numba", "cupy[host]"]
DTYPES = [np.float64, np.float32]


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


def _statsq(W, backend="numpy", **kwargs):
    return _backend(backend).get("statsq_quantize")(W, **kwargs)


def _qkr(W_q, W_k, backend="numpy", **kwargs):
    return _backend(backend).get("qkr_quantize")(W_q, W_k, **kwargs)


# -- StatsQ: values by hand ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_statsq_ties_round_half_to_even(backend, dtype):
    # s = 2·mean|W| = 2, w̃ = [0, ½, −½, 1 − 1e-6]; b = 2: n·w̃ − ½ = [−½, ½, −3/2, 3/2⁻]
    # half to even: [−0, 0, −2, 1] → s(k + ½)/2 = [½, ½, −3/2, 3/2]
    # (half away from zero would give [−1, 1, −2, 1] → [−½, 3/2, −3/2, 3/2])
    W = np.array([[0.0, 1.0, -1.0, 2.0]], dtype=dtype)
    w_q = _statsq(W, backend, bits=2)
    assert w_q.dtype == dtype
    np.testing.assert_array_equal(w_q, np.array([[0.5, 0.5, -1.5, 1.5]], dtype=dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_statsq_three_bit_ties_go_to_the_even_integer(backend):
    # s = 2·Σ|W|/8 = 1, n = 4: w̃ = k/4 gives β = k − ½, a tie for every k (w̃ = 1 is clipped)
    W = np.array([[0.0, 0.25, -0.25, 0.5, -0.5, 0.75, -0.75, 1.0]])
    assert statsq_scale(W)[0, 0] == 1.0
    beta = 4 * np.array([0.0, 0.25, -0.25, 0.5, -0.5, 0.75, -0.75, 1.0 - 1e-6]) - 0.5
    even = np.array([-0.0, 0.0, -2.0, 2.0, -2.0, 2.0, -4.0, 3.0])  # rint(β), by hand
    np.testing.assert_array_equal(np.rint(beta), even)
    np.testing.assert_array_equal(_statsq(W, backend, bits=3)[0], (even + 0.5) / 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_statsq_one_bit_lower_clip_is_off_the_grid_unless_clamped(backend):
    # s = 4; row 0: w̃ = [−1, ¼, ¼], β = w̃ − ½ = [−3/2, −¼, −¼] → [−2, 0, 0]: −1.5·s = −6
    W = np.array([[-4.0, 1.0, 1.0], [4.0, -1.0, -1.0]])
    np.testing.assert_array_equal(_statsq(W, backend, bits=1), [[-6.0, 2.0, 2.0], [2.0, -2.0, -2.0]])
    np.testing.assert_array_equal(
        _statsq(W, backend, bits=1, clamp_levels=True), [[-2.0, 2.0, 2.0], [2.0, -2.0, -2.0]]
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_statsq_upper_clip_keeps_the_top_level_and_clamping_changes_nothing_for_b_above_1(backend, bits):
    rng = np.random.default_rng(bits)
    W = rng.standard_normal((4, 50)) * 2
    W[:, 0] = 40.0  # w̃ = 1 − 1e-6: the top level (n − ½)/n · s
    W[:, 1] = -40.0  # w̃ = −1: β = −n − ½ rounds to −n (n even), the bottom level
    n = 2 ** (bits - 1)
    s = statsq_scale(W)[:, 0]
    w_q = _statsq(W, backend, bits=bits)
    np.testing.assert_allclose(w_q[:, 0], s * (n - 0.5) / n, rtol=1e-15)
    np.testing.assert_allclose(w_q[:, 1], -s * (n - 0.5) / n, rtol=1e-15)
    np.testing.assert_array_equal(_statsq(W, backend, bits=bits, clamp_levels=True), w_q)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_statsq_level_set_and_count(bits):
    # a dense row hits every level: exactly 2^b values ±(k + ½)s/n, k = 0..n−1 (clamped for b = 1)
    rng = np.random.default_rng(7)
    W = rng.uniform(-1.2, 1.2, size=(3, 4000))
    n = 2 ** (bits - 1)
    w_q = statsq_quantize(W, bits=bits, clamp_levels=True)
    grid = (np.arange(-n, n) + 0.5) / n
    for row, s in zip(w_q, statsq_scale(W)[:, 0], strict=True):
        values = np.unique(np.round(row / s, 12))
        np.testing.assert_allclose(values, grid, rtol=0, atol=1e-12)
        assert len(values) == 2**bits
        assert not np.any(values == 0)  # symmetric levels without zero


def test_statsq_is_idempotent_with_the_scale_held_fixed_not_when_recomputed():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((5, 16))
    s = statsq_scale(W)
    w_q = statsq_quantize(W, bits=3)
    np.testing.assert_array_equal(statsq_levels(W, s, bits=3), w_q)  # the op is the map at s
    np.testing.assert_array_equal(statsq_levels(w_q, s, bits=3), w_q)  # Q(Q(W)) = Q(W), s fixed
    # recomputed from Q(W), the scale moves (2·mean|Q| ≠ 2·mean|W|), and so do the levels
    assert not np.allclose(statsq_scale(w_q), s)
    assert not np.allclose(statsq_quantize(w_q, bits=3), w_q)


@pytest.mark.parametrize("backend", BACKENDS)
def test_statsq_three_d_scale_is_shared_by_the_heads(backend):
    rng = np.random.default_rng(11)
    W = rng.standard_normal((3, 4, 5))
    s = 2 * np.mean([np.abs(W[h]).mean(axis=1) for h in range(3)], axis=0)  # one per row index
    np.testing.assert_allclose(statsq_scale(W), s[None, :, None], rtol=1e-15)
    expected = np.stack([statsq_levels(W[h], s[:, None], bits=2) for h in range(3)])
    np.testing.assert_allclose(_statsq(W, backend, bits=2), expected, rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_statsq_ste_passes_the_upstream_gradient_also_where_clipped(backend, dtype):
    W = np.array([[-4.0, 1.0, 1.0, 0.3], [5.0, -1.0, 0.5, 0.0]], dtype=dtype)  # w̃ = −1 and 1 clipped
    g = np.array([[0.5, -2.0, 3.0, 7.0], [-1.0, 4.0, 0.25, -0.5]], dtype=dtype)
    _, pullback = refimpl.vjp("statsq_quantize", W, bits=2, backend=_backend(backend))
    (g_W,) = pullback(g)
    assert g_W.dtype == dtype and g_W is not g
    np.testing.assert_array_equal(g_W, g)


def test_statsq_refuses_a_zero_scale():
    with pytest.raises(refimpl.InputError, match="s = 0 in rows 1 "):
        statsq_quantize(np.array([[1.0, 2.0], [0.0, 0.0]]), bits=2)
    ok = np.array([[[0.0, 0.0], [1.0, 2.0]], [[3.0, 0.0], [0.0, 1.0]]])  # head 0's row 0 zero only
    assert np.all(np.isfinite(statsq_quantize(ok, bits=2)))
    with pytest.raises(refimpl.InputError, match="s = 0 for r = 0 "):
        statsq_quantize(np.array([[[0.0, 0.0], [1.0, 2.0]]] * 2), bits=2)
    # a nonzero row whose mean underflows in float32 has s = 0 as well: refused, not divided by
    tiny = np.array([[1e-45, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    assert tiny[0, 0] > 0
    with pytest.raises(refimpl.InputError, match="s = 0 in rows 0 "):
        statsq_quantize(tiny, bits=2)


# -- the official StatsQuantizer and CGA, re-derived in PyTorch -----------------------------------
def _official_statsq(torch, weight, num_bits):
    """nbasyl/OFQ src/quantization/quantizer/statsq.py, StatsQuantizer.forward (clip_val = 2)."""
    clip_val = torch.tensor([2.0])
    if len(weight.shape) == 2:
        scaling_factor = 2 * torch.mean(abs(weight), dim=1, keepdim=True)
    else:
        scaling_factor = 2 * torch.mean(torch.mean(abs(weight), dim=-1, keepdim=True), dim=0, keepdim=True)
    scaling_factor = scaling_factor.detach()
    cliped = torch.clamp(weight / scaling_factor, min=(-clip_val / 2), max=(clip_val / 2) - 1e-6)
    n = float(2 ** (num_bits - 1))
    no_grad = scaling_factor * ((torch.round(cliped * n - 0.5) + 0.5) / n)
    return no_grad.detach() - weight.detach() + weight


@pytest.mark.parametrize("shape", [(6, 9), (3, 4, 7)])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_statsq_matches_the_official_code(shape, bits):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(bits)
    W = rng.standard_normal(shape).astype(np.float32)
    W.reshape(-1)[::5] = 0.0  # ties
    W.reshape(-1)[1] = -9.0  # the lower clip
    weight = torch.from_numpy(W.copy()).requires_grad_(True)
    official = _official_statsq(torch, weight, bits)
    g = rng.standard_normal(shape).astype(np.float32)
    official.backward(torch.from_numpy(g))
    w_q, pullback = refimpl.vjp("statsq_quantize", W, bits=bits)
    # the STE's `q.detach() − w.detach() + w` rounds once more in float32: equal to a few ulps
    np.testing.assert_allclose(w_q, official.detach().numpy(), rtol=0, atol=4e-7 * np.abs(W).max())
    np.testing.assert_array_equal(pullback(g)[0], weight.grad.numpy())


def _official_cga_trainable(torch, cur_weight, num_bits, boundary_range):
    """nbasyl/OFQ cga.py, freeze_outside_boundary_weight_idx, returning 1 − freeze (the loop kept)."""
    not_freeze_idx = torch.zeros_like(cur_weight)
    clip_val = torch.tensor([2.0])
    scaling_factor = 2 * torch.mean(abs(cur_weight), dim=1, keepdim=True)
    cliped = torch.clamp(cur_weight / scaling_factor, min=(-clip_val / 2), max=(clip_val / 2) - 1e-6)
    n = float(2 ** (num_bits - 1))
    b4_round = cliped * n - 0.5
    rounded = torch.round(b4_round)
    for i in np.arange(start=float(torch.min(rounded)), stop=float(torch.max(rounded))):
        within = ((b4_round - i) <= (0.5 + boundary_range)) * ((b4_round - i) >= (0.5 - boundary_range))
        not_freeze_idx = not_freeze_idx + within.float()
    return not_freeze_idx


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("delta", [0.005, 0.007, 0.1, 0.3])
def test_cga_mask_matches_the_official_loop(bits, delta):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(int(bits * 1000 * delta) + bits)
    W = rng.standard_normal((8, 40)).astype(np.float32)
    W[:, :3] = [-9.0, 0.0, 9.0]  # clipped at both ends, a zero
    official = _official_cga_trainable(torch, torch.from_numpy(W), bits, delta).numpy()
    assert set(np.unique(official)) <= {0.0, 1.0}
    np.testing.assert_array_equal(cga_boundary_mask(W, bits=bits, boundary_range=delta), official == 1.0)


# -- CGA: values placed by hand -------------------------------------------------------------------
def test_cga_marks_weights_within_delta_of_a_boundary():
    row, near = boundary_row()  # β = i + ½ ± {0.004, 0.006} for i = −2, −1, 0 (b = 2, s = 1)
    np.testing.assert_allclose(statsq_scale(row), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(cga_boundary_mask(row, bits=2), near)  # default δ = 0.005
    wider = cga_boundary_mask(row, bits=2, boundary_range=0.007)  # ±0.006 now inside as well
    np.testing.assert_array_equal(wider, np.concatenate([np.ones(12, bool), [False, False]])[None])
    none = cga_boundary_mask(row, bits=2, boundary_range=0.003)
    assert not none.any()


def test_cga_ignores_boundaries_outside_the_occupied_levels():
    # b = 2, s = 1 (Σ|W| = 2): β = 2w̃ − ½. With β = ½ + 0.001 the weight itself rounds to
    # level 1, the range [min rint β, max rint β) is [−2, 1) and the boundary ½ (i = 0) counts
    W = np.array([[0.5005, 0.0005, -0.9, -0.599]])  # β = [.501, −.499, −2.3, −1.698]
    beta = 2 * np.clip(W / statsq_scale(W), -1, 1 - 1e-6) - 0.5
    assert np.rint(beta).max() == 1.0
    np.testing.assert_array_equal(cga_boundary_mask(W, bits=2), [[True, True, False, False]])
    # with β = ½ − 0.001 no weight rounds to level 1: the range is [−2, 0) and the weight 0.001
    # from the boundary ½ is frozen (the official loop stops below max rint β)
    W = np.array([[0.4995, 0.0005, -0.9, -0.6]])  # β = [.499, −.499, −2.3, −1.7]
    np.testing.assert_array_equal(cga_boundary_mask(W, bits=2), [[False, True, False, False]])


def test_cga_one_bit_lower_clip_widens_the_range():
    # b = 1, s = 4: row 0 β = [−3/2, −¼, −¼] rounds to [−2, 0, 0]; range [−2, 0): the boundaries
    # −3/2 and −½; β = −3/2 sits on −3/2 (distance 0), β = −¼ is ¼ from −½
    W = np.array([[-4.0, 1.0, 1.0], [4.0, -1.0, -1.0]])
    np.testing.assert_array_equal(
        cga_boundary_mask(W, bits=1, boundary_range=0.3), [[True, True, True], [False, True, True]]
    )
    np.testing.assert_array_equal(
        cga_boundary_mask(W, bits=1, boundary_range=0.2), [[True, False, False], [False, False, False]]
    )


# -- QKR ------------------------------------------------------------------------------------------
def _heads(seed=0, H=3, d=2, D=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((H, d, D)), rng.standard_normal((H, d, D)), rng.standard_normal((H, D, D))


@pytest.mark.parametrize("backend", BACKENDS)
def test_qkr_quantizes_the_products_with_the_three_d_statsq(backend):
    W_q, W_k, _ = _heads()
    products = np.einsum("hra,hrb->hab", W_q, W_k)
    np.testing.assert_allclose(
        _qkr(W_q, W_k, backend, bits=3), statsq_quantize(products, bits=3), rtol=1e-13, atol=1e-15
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_qkr_per_head_scale_is_the_official_reshape_to_two_d(backend):
    # official: W_qk.reshape(H·D, D) through the 2-D StatsQuantizer, reshaped back
    W_q, W_k, _ = _heads(1)
    H, _, D = W_q.shape
    products = np.einsum("hra,hrb->hab", W_q, W_k)
    official = statsq_quantize(products.reshape(H * D, D), bits=2).reshape(H, D, D)
    np.testing.assert_allclose(_qkr(W_q, W_k, backend, bits=2, per_head_scale=True), official, rtol=1e-13)
    assert not np.allclose(_qkr(W_q, W_k, backend, bits=2), official)  # the shared scale differs


@pytest.mark.parametrize("backend", BACKENDS)
def test_qkr_backward_is_the_chain_rule_through_the_product(backend):
    W_q, W_k, G = _heads(2)
    _, pullback = refimpl.vjp("qkr_quantize", W_q, W_k, bits=2, backend=_backend(backend))
    g_W_q, g_W_k = pullback(G)
    np.testing.assert_allclose(g_W_q, W_k @ np.swapaxes(G, 1, 2), rtol=1e-13)
    np.testing.assert_allclose(g_W_k, W_q @ G, rtol=1e-13)
    # = the exact gradient of ⟨G, W_qᵀW_k⟩ (bilinear: central differences are exact up to rounding)
    h = 1e-3
    for index in [(0, 0, 0), (1, 1, 3), (2, 0, 4)]:
        E = np.zeros_like(W_q)
        E[index] = h

        def pairing(a, b):
            return np.sum(G * np.einsum("hra,hrb->hab", a, b))

        np.testing.assert_allclose((pairing(W_q + E, W_k) - pairing(W_q - E, W_k)) / (2 * h), g_W_q[index])
        np.testing.assert_allclose((pairing(W_q, W_k + E) - pairing(W_q, W_k - E)) / (2 * h), g_W_k[index])


def test_qkr_matches_the_official_code_with_per_head_scale():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    H, d, D = 2, 3, 6  # q.weight (D, D) reshaped to (H, D/H, D)
    q_weight = rng.standard_normal((D, D)).astype(np.float32)
    k_weight = rng.standard_normal((D, D)).astype(np.float32)
    wq = torch.from_numpy(q_weight.copy()).requires_grad_(True)
    wk = torch.from_numpy(k_weight.copy()).requires_grad_(True)
    # QAttention_qkreparam.forward
    multi_head_qk = wq.reshape(H, D // H, D).transpose(-2, -1).contiguous() @ wk.reshape(H, D // H, D)
    official = _official_statsq(torch, multi_head_qk.reshape(H * D, D), 2).reshape(H, D, D)
    G = rng.standard_normal((H, D, D)).astype(np.float32)
    official.backward(torch.from_numpy(G))
    W_q, W_k = q_weight.reshape(H, d, D), k_weight.reshape(H, d, D)
    w_qk, pullback = refimpl.vjp("qkr_quantize", W_q, W_k, bits=2, per_head_scale=True)
    np.testing.assert_allclose(w_qk, official.detach().numpy(), rtol=1e-5, atol=1e-5)
    g_W_q, g_W_k = pullback(G)
    np.testing.assert_allclose(g_W_q.reshape(D, D), wq.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_W_k.reshape(D, D), wk.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_qkr_refuses_a_zero_scale():
    W_k = np.array([[[1.0, 2.0, 0.5]], [[-1.0, 0.5, 2.0]]])
    W_q = np.array([[[0.0, 1.0, 1.0]], [[3.0, 2.0, -1.0]]])  # row 0 of head 0's W_qk is zero
    assert np.all(np.isfinite(qkr_quantize(W_q, W_k, bits=2)))  # shared scale: head 1 keeps it > 0
    with pytest.raises(refimpl.InputError, match="s = 0 in row 0 of head 0"):
        qkr_quantize(W_q, W_k, bits=2, per_head_scale=True)
