"""N:M masks, SR-STE / MDGF sparse weights and the SDGF schedule: hand values, the paper's
invariants, and the official code's rules (ported to PyTorch where it runs)."""

import math

import numpy as np
import pytest

import refimpl
from refimpl import InputError

qs = refimpl.quantization_sparsity


def _groups(values, M):  # noqa: N803
    return np.asarray(values).reshape(-1, M)


@pytest.mark.parametrize(("N", "M"), [(1, 2), (2, 4), (1, 4), (3, 4), (2, 8), (1, 16)])
def test_nm_mask_keeps_exactly_n_largest_per_group(N, M):  # noqa: N803
    rng = np.random.default_rng(N * 100 + M)
    W = rng.standard_normal((5, 3 * M))  # noqa: N806
    mask = qs.nm_mask(W, N=N, M=M)
    kept = _groups(mask, M)
    assert np.all(kept.sum(axis=1) == N)
    magnitude = _groups(np.abs(W), M)
    smallest_kept = np.where(kept, magnitude, np.inf).min(axis=1)
    largest_pruned = np.where(kept, -np.inf, magnitude).max(axis=1)
    assert np.all(smallest_kept > largest_pruned)


def test_nm_mask_ties_prune_the_lower_index_first():
    W = np.array([[1.0, 1.0, 1.0, 1.0, 0.5, -0.5, 0.5, -0.5, 0.0, 3.0, 0.0, -3.0]])  # noqa: N806
    mask = qs.nm_mask(W, N=2, M=4)
    assert mask.astype(int).tolist() == [[0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1]]
    mask_one = qs.nm_mask(W, N=1, M=4)
    assert mask_one.astype(int).tolist() == [[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]]


def test_nm_mask_ranks_magnitudes_not_values():
    W = np.array([[-5.0, 1.0, 0.1, -0.2]])  # noqa: N806
    assert qs.nm_mask(W, N=2, M=4).tolist() == [[True, True, False, False]]


def test_nm_mask_of_a_conv_weight_is_the_row_rule_on_the_permuted_weight():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((4, 8, 3, 2))  # noqa: N806 - (out, in, kh, kw)
    mask = qs.nm_mask(W, N=2, M=4, conv=True)
    permuted = np.transpose(W, (0, 2, 3, 1))  # (out, kh, kw, in)
    expected = np.transpose(qs.nm_mask(permuted, N=2, M=4), (0, 3, 1, 2))
    assert np.array_equal(mask, expected)
    # two of every four input channels at each (out, kh, kw)
    assert np.all(mask.reshape(4, 2, 4, 3, 2).sum(axis=2) == 2)
    # and not the mask of grouping along kw (the memory-contiguous axis) nor in C order
    assert not np.array_equal(mask, qs.nm_mask(W.reshape(4, -1), N=2, M=4).reshape(W.shape))


def test_nm_mask_matches_the_official_argsort_rule():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    W = rng.standard_normal((6, 16))  # noqa: N806
    for N, M in [(2, 4), (1, 8), (4, 16)]:  # noqa: N806
        # the official get_sparse_mask, row-wise branch (a stable argsort: no ties here anyway)
        weight = torch.from_numpy(W)
        group = weight.numel() // M
        index = torch.argsort(weight.abs().reshape(group, M), dim=1, stable=True)[:, : M - N]
        w_b = torch.ones(group, M, dtype=torch.float64).scatter_(1, index, 0).reshape(W.shape)
        assert np.array_equal(qs.nm_mask(W, N=N, M=M), w_b.numpy() == 1)


def test_nm_mask_refuses_rows_not_divisible_by_m():
    with pytest.raises(InputError, match="divisible by M = 4"):
        qs.nm_mask(np.ones((4, 6)), N=2, M=4)


@pytest.mark.parametrize(
    "options",
    [
        {"variant": "sr_ste"},
        {"variant": "step"},
        {"variant": "mdgf_linear", "step": 50, "decay_rate": 0.02},  # β = max(1 − 1, 0) = 0
    ],
)
def test_sparse_weight_has_exactly_n_nonzeros_per_group_when_beta_is_zero(options):
    rng = np.random.default_rng(5)
    W = rng.standard_normal((4, 16))  # noqa: N806
    w_sparse = qs.nm_sparse_weight(W, N=1, M=4, **options)
    assert np.all((_groups(w_sparse, 4) != 0).sum(axis=1) == 1)
    mask = qs.nm_mask(W, N=1, M=4)
    assert np.array_equal(w_sparse[mask], W[mask])  # kept weights copied exactly


def test_sr_ste_decay_term_acts_on_pruned_entries_only():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((3, 8))  # noqa: N806
    g = rng.standard_normal((3, 8))
    _, pullback = refimpl.vjp(qs.nm_sparse_weight, W, N=2, M=4, variant="sr_ste", lambda_w=0.3)
    (g_W,) = pullback(g)  # noqa: N806
    mask = qs.nm_mask(W, N=2, M=4)
    extra = g_W - g
    assert np.all(extra[mask] == 0)
    np.testing.assert_allclose(extra[~mask], 0.3 * W[~mask], rtol=1e-15)


def test_sr_ste_default_decay_is_2e_minus_4():
    W = np.array([[4.0, -1.0, 2.0, 3.0]])  # noqa: N806
    _, pullback = refimpl.vjp(qs.nm_sparse_weight, W, N=2, M=4, variant="sr_ste")
    np.testing.assert_allclose(pullback(np.zeros((1, 4)))[0], [[0.0, -2e-4, 4e-4, 0.0]], rtol=1e-15)


@pytest.mark.parametrize(
    ("variant", "beta"), [("mdgf_linear", 1 - 0.01 * 30), ("mdgf_exp", math.exp(-0.01 * 30))]
)
def test_mdgf_forward_scales_pruned_weights_by_beta_and_passes_g_straight_through(variant, beta):
    rng = np.random.default_rng(7)
    W = rng.standard_normal((2, 8))  # noqa: N806
    g = rng.standard_normal((2, 8))
    w_sparse, pullback = refimpl.vjp(
        qs.nm_sparse_weight, W, N=1, M=4, variant=variant, step=30, decay_rate=0.01
    )
    mask = qs.nm_mask(W, N=1, M=4)
    np.testing.assert_allclose(w_sparse, np.where(mask, W, beta * W), rtol=1e-15)
    assert np.array_equal(pullback(g)[0], g)  # the official dense STE


def test_mdgf_exact_gradient_matches_finite_differences():
    rng = np.random.default_rng(8)
    W = rng.standard_normal((2, 8))  # noqa: N806  (no near-ties: the mask is locally constant)
    v = rng.standard_normal((2, 8))
    kwargs = {"N": 2, "M": 4, "variant": "mdgf_exp", "step": 20, "decay_rate": 0.03, "exact_grad": True}
    _, pullback = refimpl.vjp(qs.nm_sparse_weight, W, **kwargs)
    (g_W,) = pullback(v)  # noqa: N806
    h = 1e-6
    numeric = np.zeros_like(W)
    for index in np.ndindex(W.shape):
        step = np.zeros_like(W)
        step[index] = h
        plus = qs.nm_sparse_weight(W + step, **kwargs)
        minus = qs.nm_sparse_weight(W - step, **kwargs)
        numeric[index] = np.sum(v * (plus - minus)) / (2 * h)
    np.testing.assert_allclose(g_W, numeric, rtol=1e-8, atol=1e-10)


def test_sparse_weight_refuses_mdgf_without_its_step():
    with pytest.raises(InputError, match="'step'"):
        qs.nm_sparse_weight(np.ones((1, 4)), N=2, M=4, variant="mdgf_linear", decay_rate=0.1)


def test_sdgf_one_sixteen_has_five_equal_frames():
    kept, binary = qs.sdgf_schedule(
        np.arange(30), N=1, M=16, total_epochs=30, dense_epochs=5, fine_tune_epochs=5
    )
    # 20 sparse epochs over log2(16) + 1 = 5 frames of 4 epochs: 15:16, 8:16, 4:16, 2:16, 1:16
    expected = [16] * 5 + [15] * 4 + [8] * 4 + [4] * 4 + [2] * 4 + [1] * 9
    assert kept.tolist() == expected
    assert binary.tolist() == [False] * 25 + [True] * 5


def _official_frames(N, M, total, dense, fine):  # noqa: N803
    """The official get_decay_config ("sparsify") and get_sparse_weights' frame lookup."""
    frames = int(math.log2(M / N)) + 1
    size = (total - dense - fine) / frames
    config = {}
    for i in range(frames):
        config[int(dense) + int(i * size)] = (M - 1) if i == 0 else int(M / math.pow(2, i))
    kept, current = [], M
    for epoch in range(total):
        if epoch < dense:
            kept.append(M)
            continue
        current = config.get(epoch, current)
        kept.append(current)
    return kept


@pytest.mark.parametrize(
    ("N", "M", "total", "dense", "fine"),
    [(1, 4, 10, 1, 3), (2, 8, 37, 4, 6), (1, 32, 13, 2, 3), (1, 2, 9, 0, 0), (4, 16, 100, 10, 20)],
)
def test_sdgf_frames_match_the_official_schedule(N, M, total, dense, fine):  # noqa: N803
    kept, binary = qs.sdgf_schedule(
        np.arange(total), N=N, M=M, total_epochs=total, dense_epochs=dense, fine_tune_epochs=fine
    )
    assert kept.tolist() == _official_frames(N, M, total, dense, fine)
    _, official_binary = qs.sdgf_schedule(
        np.arange(total),
        N=N,
        M=M,
        total_epochs=total,
        dense_epochs=dense,
        fine_tune_epochs=fine,
        official_boundary=True,
    )
    assert official_binary.tolist() == [e > total - fine for e in range(total)]
    assert binary.sum() == fine


def test_sdgf_refuses_targets_that_the_halving_frames_never_reach():
    with pytest.raises(InputError, match="power of two"):
        qs.sdgf_schedule(np.arange(3), N=3, M=8, total_epochs=10, dense_epochs=1, fine_tune_epochs=1)
