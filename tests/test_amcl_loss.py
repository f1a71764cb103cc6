"""AMCL loss: hand values, the official NT-Xent pipeline, top-k selection, the catalog's VJP."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import amcl_loss


def _sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


def _official_nt_xent(z1, z2, phi, *, dim, beta, tau_min, tau_max, topk):
    """LeiWangR/cl amcl/losses.py, AMCLNTXentLoss.forward, transcribed in NumPy (features
    already L2-normalized; ``phi`` the shared temperature MLP)."""
    batch, heads, _ = z1.shape

    def temperature(score):
        return tau_min + (tau_max - tau_min) * _sigmoid(-score)

    def direction(anchor, positive, negatives):
        pos_sim = (anchor * positive).sum(-1)
        tau_pos = temperature((phi(anchor) * phi(positive)).sum(-1))
        sim_neg = (anchor[:, None, :] * negatives).sum(-1)
        tau_neg = temperature(np.einsum("bd,bnd->bn", phi(anchor), phi(negatives)))
        k = min(topk, negatives.shape[1])
        idx = np.argsort(-sim_neg, axis=1)[:, :k]
        vals = np.take_along_axis(sim_neg, idx, 1)
        tau_top = np.take_along_axis(tau_neg, idx, 1)
        neg = (vals / tau_top).mean(1)
        reg_pos = beta * (0.5 * dim * np.log(tau_pos) + 1 / tau_pos)
        reg_neg = beta * (np.log(tau_top).sum(1) + (1 / tau_top).sum(1))
        return (-pos_sim / tau_pos + neg + reg_pos - reg_neg).mean()

    others = ~np.eye(batch, dtype=bool)
    total = 0.0
    for h in range(heads):
        a, p = z1[:, h], z2[:, h]
        same = np.broadcast_to(a[None], (batch, batch, a.shape[1]))[others].reshape(batch, batch - 1, -1)
        other = np.broadcast_to(p[None], (batch, batch, a.shape[1]))[others].reshape(batch, batch - 1, -1)
        neg_a = np.concatenate([same, other], axis=1)
        neg_p = np.concatenate([other, same], axis=1)
        total += 0.5 * (direction(a, p, neg_a) + direction(p, a, neg_p))
    return total


def _others(view, others):
    """Row b holds the view's features of every sample but b: (B, B − 1, D)."""
    batch = view.shape[0]
    return np.broadcast_to(view[None], (batch,) + view.shape)[others].reshape(batch, batch - 1, -1)


def _op_inputs(z1, z2, phi):
    """The same batch as the op's inputs: both directions stacked as rows (R = 2B)."""
    batch, heads, _ = z1.shape
    others = ~np.eye(batch, dtype=bool)
    s_pos, t_pos, s_neg, t_neg = [], [], [], []
    for h in range(heads):
        views = (z1[:, h], z2[:, h])
        rows = ([], [], [], [])
        for anchor, positive in (views, views[::-1]):
            # the anchor's own view first, then the other view (AMCLNTXentLoss.forward)
            negatives = np.concatenate([_others(anchor, others), _others(positive, others)], axis=1)
            rows[0].append((anchor * positive).sum(-1))
            rows[1].append((phi(anchor) * phi(positive)).sum(-1))
            rows[2].append((anchor[:, None] * negatives).sum(-1))
            rows[3].append(np.einsum("bd,bnd->bn", phi(anchor), phi(negatives)))
        s_pos.append(np.concatenate(rows[0]))
        t_pos.append(np.concatenate(rows[1]))
        s_neg.append(np.concatenate(rows[2]))
        t_neg.append(np.concatenate(rows[3]))
    return np.stack(s_pos), np.stack(t_pos), np.stack(s_neg), np.stack(t_neg)


@pytest.fixture
def features():
    rng = np.random.default_rng(5)
    batch, heads, dim = 6, 3, 4
    z1 = rng.standard_normal((batch, heads, dim))
    z2 = z1 + 0.5 * rng.standard_normal((batch, heads, dim))
    z1 /= np.linalg.norm(z1, axis=-1, keepdims=True)
    z2 /= np.linalg.norm(z2, axis=-1, keepdims=True)
    w1, w2 = rng.standard_normal((dim, dim)), rng.standard_normal((dim, dim))

    def phi(x):
        return np.maximum(x @ w1, 0.0) @ w2

    return z1, z2, phi, dim


@pytest.mark.parametrize("topk", [3, 100])
def test_amcl_loss_matches_the_official_nt_xent_pipeline(features, topk):
    z1, z2, phi, dim = features
    settings = {"beta": 0.01, "tau_min": 1e-5, "tau_max": 2.0}
    expected = _official_nt_xent(z1, z2, phi, dim=dim, topk=topk, **settings)
    got = amcl_loss(*_op_inputs(z1, z2, phi), dim=dim, top_k=topk, **settings)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_amcl_loss_hand_value_with_unit_temperatures():
    # t = 0 → τ = 2σ(0) = 1; kept {0.6, 0.2}: −0.5 + 0.4 + 0.1·Ω(1) − 0.1·2·(log 1 + 1)
    loss = amcl_loss(
        np.array([[0.5]]),
        np.zeros((1, 1)),
        np.array([[[0.2, -0.4, 0.6]]]),
        np.zeros((1, 1, 3)),
        dim=4,
        beta=0.1,
        tau_min=1e-300,
        top_k=2,
    )
    np.testing.assert_allclose(loss, -0.2, rtol=1e-14)


def test_amcl_loss_regularizer_is_omega_of_tau():
    # t = −40: τ = τ_max; Ω(τ) = (d/2) log τ + 1/τ at τ = e² is d + e⁻²; one negative: log τ + 1/τ
    tau = math.e**2
    loss = amcl_loss(
        np.zeros((1, 1)),
        np.full((1, 1), -40.0),
        np.zeros((1, 1, 1)),
        np.full((1, 1, 1), -40.0),
        dim=10,
        beta=2.0,
        tau_min=1.0,
        tau_max=tau,
    )
    np.testing.assert_allclose(loss, 2.0 * (5.0 * 2.0 + 1 / tau) - 2.0 * (2.0 + 1 / tau), rtol=1e-13)


def test_amcl_loss_top_k_keeps_the_hardest_and_the_lowest_index_on_ties():
    s_neg = np.array([[[0.1, 0.7, 0.3, 0.7]]])
    _, pullback = refimpl.vjp(
        amcl_loss,
        np.zeros((1, 1)),
        np.zeros((1, 1)),
        s_neg,
        np.zeros((1, 1, 4)),
        dim=2,
        beta=0.0,
        tau_min=1e-300,
        top_k=1,
    )
    _, _, g_s_neg, g_t_neg = pullback(np.array(1.0))
    # only index 1 (the first of the tied 0.7s) is kept: ∂/∂s = 1/(kτ) = 1
    np.testing.assert_array_equal(g_s_neg, [[[0.0, 1.0, 0.0, 0.0]]])
    assert g_t_neg[0, 0, 1] != 0 and np.count_nonzero(g_t_neg) == 1


def test_amcl_loss_top_k_at_least_n_uses_every_negative(features):
    z1, z2, phi, dim = features
    args = _op_inputs(z1, z2, phi)  # N = 2B − 2 = 10
    np.testing.assert_allclose(
        amcl_loss(*args, dim=dim, top_k=10), amcl_loss(*args, dim=dim, top_k=100), rtol=1e-15
    )
    assert abs(amcl_loss(*args, dim=dim, top_k=9) - amcl_loss(*args, dim=dim, top_k=10)) > 1e-6


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_amcl_loss_vjp_matches_the_catalog_formulas(backend):
    rng = np.random.default_rng(3)
    heads, rows, n, k, d, beta, tau_min, tau_max = 2, 4, 6, 3, 8, 0.2, 0.01, 1.5
    s_pos, s_neg = rng.uniform(-1, 1, (heads, rows)), rng.uniform(-1, 1, (heads, rows, n))
    t_pos, t_neg = rng.standard_normal((heads, rows)), rng.standard_normal((heads, rows, n))
    _, pullback = refimpl.vjp(
        "amcl_loss",
        s_pos,
        t_pos,
        s_neg,
        t_neg,
        dim=d,
        beta=beta,
        tau_min=tau_min,
        tau_max=tau_max,
        top_k=k,
        backend=backend,
    )
    g = 1.7
    g_s_pos, g_t_pos, g_s_neg, g_t_neg = pullback(np.array(g))
    w = g / rows

    def tau_and_slope(t):
        sig = _sigmoid(-t)
        return tau_min + (tau_max - tau_min) * sig, -(tau_max - tau_min) * sig * (1 - sig)

    tau, slope = tau_and_slope(t_pos)
    np.testing.assert_allclose(g_s_pos, -w / tau, rtol=1e-12)
    np.testing.assert_allclose(
        g_t_pos, w * (s_pos / tau**2 + beta * (d / (2 * tau) - 1 / tau**2)) * slope, rtol=1e-12
    )
    keep = np.zeros_like(s_neg, dtype=bool)
    np.put_along_axis(keep, np.argsort(-s_neg, axis=-1)[..., :k], True, axis=-1)
    tau_n, slope_n = tau_and_slope(t_neg)
    np.testing.assert_allclose(g_s_neg, np.where(keep, w / (k * tau_n), 0.0), rtol=1e-12)
    expected_t = w * (-s_neg / (k * tau_n**2) - beta * (1 / tau_n - 1 / tau_n**2)) * slope_n
    np.testing.assert_allclose(g_t_neg, np.where(keep, expected_t, 0.0), rtol=1e-12, atol=1e-300)


def test_amcl_loss_sums_heads_and_averages_rows():
    rng = np.random.default_rng(8)
    args = (
        rng.uniform(-1, 1, (3, 4)),
        rng.standard_normal((3, 4)),
        rng.uniform(-1, 1, (3, 4, 5)),
        rng.standard_normal((3, 4, 5)),
    )
    whole = amcl_loss(*args, dim=16, top_k=2)
    per_head = sum(amcl_loss(*(a[h : h + 1] for a in args), dim=16, top_k=2) for h in range(3))
    halves = [amcl_loss(*(a[:, sl] for a in args), dim=16, top_k=2) for sl in (slice(0, 2), slice(2, 4))]
    np.testing.assert_allclose(whole, per_head, rtol=1e-13)
    np.testing.assert_allclose(whole, 0.5 * (halves[0] + halves[1]), rtol=1e-13)


def test_amcl_loss_refuses_tau_min_not_below_tau_max():
    ones = np.ones((1, 2))
    with pytest.raises(refimpl.InputError, match="tau_max > tau_min"):
        amcl_loss(ones, ones, np.ones((1, 2, 3)), np.ones((1, 2, 3)), dim=4, tau_min=2.0, tau_max=2.0)
