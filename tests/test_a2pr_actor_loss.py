"""A2PR's actor loss: hand values, the official code's target selection and weights, the
catalog's invariants (m = 0 rows, A_π < A_a), the detached λ and bad input."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import a2pr_actor_loss

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _loss(*args, backend="numpy", **kwargs):
    return _backend(backend).get("a2pr_actor_loss")(*args, **kwargs)


def _hand_example():
    return (
        np.array([[1.0], [0.0]]),  # π
        np.array([[0.0], [2.0]]),  # a
        np.array([[3.0], [1.0]]),  # ã
        np.array([1.0, 3.0]),  # Q(s, π)
        np.array([2.0, 5.0]),  # Q(s, a)
        np.array([4.0, 0.0]),  # Q(s, ã)
        np.ones(2),  # V(s)
    )


def _official_actor_loss(pi, a, a_recon, q_pi, q_a, q_recon, v, alpha, mask):
    """``A2PR.train``'s delayed actor update in ltlhuuu/A2PR, transcribed line by line in NumPy
    (column vectors (B, 1) for the critic and value outputs, as there)."""
    q, q_new, q_recon_col, value = (x[:, None] for x in (q_pi, q_a, q_recon, v))
    lmbda = alpha / np.abs(q).mean()
    actor_loss = -lmbda * q.mean()
    advantage_action = q_new - value
    advantage_pi = q_recon_col - value
    embedding_pi = a_recon * (advantage_pi >= advantage_action)
    embedding_action = a * (advantage_action > advantage_pi)
    embedding = embedding_pi + embedding_action
    adv_pi = q_recon_col >= value
    adv_action = q_new > value
    adv = mask * (adv_pi.astype(float) + adv_action.astype(float))
    bc_loss = (np.square(pi - embedding) * adv).mean()
    return actor_loss + bc_loss


def _random_batch(seed, batch=32, action_dim=6):
    rng = np.random.default_rng(seed)
    pi, a, a_recon = rng.standard_normal((3, batch, action_dim))
    q_pi, q_a, q_recon, v = rng.standard_normal((4, batch)) * 20 + 10
    return pi, a, a_recon, q_pi, q_a, q_recon, v


def test_actor_loss_matches_hand_computed_value_and_cotangents():
    args = _hand_example()
    loss, pullback = refimpl.vjp(a2pr_actor_loss, *args)
    # λ = 2.5/mean(1, 3) = 1.25, L_actor = −1.25·2 = −2.5; row 0: A_π = 3 ≥ A_a = 1, target ã,
    # m = 2, (1 − 3)² = 4; row 1: A_π = −1 < 4, target a, m = 1, (0 − 2)² = 4; L_bc = 12/2 = 6
    np.testing.assert_allclose(loss, 3.5, rtol=1e-15)
    g_pi, g_q_pi, g_a_recon = pullback(np.array(2.0))
    np.testing.assert_allclose(g_pi, [[-8.0], [-4.0]], rtol=1e-15)  # 2·2 m (π − target)/(B A)
    np.testing.assert_allclose(g_q_pi, [-1.25, -1.25], rtol=1e-15)  # −2 λ/B
    np.testing.assert_allclose(g_a_recon, [[8.0], [0.0]], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("alpha", "bc_weight"), [(2.5, 1.0), (2.5, 0.5), (1.0, 2.0)])
def test_actor_loss_matches_the_official_code(backend, alpha, bc_weight):
    args = _random_batch(0)
    got = _loss(*args, alpha=alpha, bc_weight=bc_weight, backend=backend)
    np.testing.assert_allclose(got, _official_actor_loss(*args, alpha, bc_weight), rtol=1e-13)


def test_official_default_mask_of_the_class_is_the_default():
    args = _random_batch(1)
    np.testing.assert_array_equal(a2pr_actor_loss(*args), a2pr_actor_loss(*args, alpha=2.5, bc_weight=1.0))
    np.testing.assert_allclose(a2pr_actor_loss(*args), _official_actor_loss(*args, 2.5, 1.0), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_with_m_zero_get_no_bc_gradient(backend):
    pi, a, a_recon, q_pi, q_a, q_recon, v = _random_batch(2, batch=8, action_dim=3)
    v = np.where(np.arange(8) % 2 == 0, np.maximum(q_a, q_recon) + 1.0, v)  # even rows: m = 0
    _, pullback = refimpl.vjp(
        "a2pr_actor_loss", pi, a, a_recon, q_pi, q_a, q_recon, v, backend=_backend(backend)
    )
    g_pi, _, g_a_recon = pullback(np.array(1.0))
    assert np.all(g_pi[::2] == 0) and np.all(g_a_recon[::2] == 0)
    assert np.any(g_pi[1::2] != 0)  # the odd rows do get one in this draw


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_target_everywhere_gives_zero_recon_cotangent(backend):
    pi, a, a_recon, q_pi, q_a, _, v = _random_batch(3, batch=6, action_dim=2)
    q_recon = q_a - 1.0  # A_π < A_a in every row
    loss, pullback = refimpl.vjp(
        "a2pr_actor_loss", pi, a, a_recon, q_pi, q_a, q_recon, v, backend=_backend(backend)
    )
    g_pi, _, g_a_recon = pullback(np.array(1.0))
    assert np.all(g_a_recon == 0)
    # the target is the dataset action: the loss does not depend on ã at all
    np.testing.assert_array_equal(loss, _loss(pi, a, a_recon + 7.0, q_pi, q_a, q_recon, v, backend=backend))
    m = (q_recon >= v).astype(float) + (q_a > v)
    np.testing.assert_allclose(g_pi, 2 * m[:, None] * (pi - a) / pi.size, rtol=1e-14)


def test_recon_cotangent_is_minus_the_pi_cotangent_where_recon_is_the_target():
    pi, a, a_recon, q_pi, q_a, q_recon, v = _random_batch(4, batch=40, action_dim=3)
    _, pullback = refimpl.vjp(a2pr_actor_loss, pi, a, a_recon, q_pi, q_a, q_recon, v)
    g_pi, _, g_a_recon = pullback(np.array(1.0))
    wins = (q_recon - v) >= (q_a - v)
    assert wins.any() and (~wins).any()
    np.testing.assert_array_equal(g_a_recon[wins], -g_pi[wins])
    assert np.all(g_a_recon[~wins] == 0)


def test_bc_gradients_match_finite_differences_and_q_pi_cotangent_holds_lambda_fixed():
    args = _random_batch(5, batch=5, action_dim=2)
    pi, a, a_recon, q_pi, q_a, q_recon, v = args
    _, pullback = refimpl.vjp(a2pr_actor_loss, *args)
    g_pi, g_q_pi, g_a_recon = pullback(np.array(1.0))
    h = 1e-6
    for index in [(0, 0), (2, 1), (4, 0)]:
        for position, grad in ((0, g_pi), (2, g_a_recon)):
            up, down = [x.copy() for x in args], [x.copy() for x in args]
            up[position][index] += h
            down[position][index] -= h
            numeric = (a2pr_actor_loss(*up) - a2pr_actor_loss(*down)) / (2 * h)
            np.testing.assert_allclose(grad[index], numeric, rtol=1e-6, atol=1e-10)
    # q_pi: the derivative of −λ mean(q) at fixed λ is −λ/B; the forward's own derivative differs
    lam = 2.5 / np.abs(q_pi).mean()
    np.testing.assert_allclose(g_q_pi, -lam / 5, rtol=1e-15)
    up, down = q_pi.copy(), q_pi.copy()
    up[0] += h
    down[0] -= h
    full = (
        a2pr_actor_loss(pi, a, a_recon, up, q_a, q_recon, v)
        - a2pr_actor_loss(pi, a, a_recon, down, q_a, q_recon, v)
    ) / (2 * h)
    assert abs(full - g_q_pi[0]) > 1e-3 * abs(g_q_pi[0])  # the stop-gradient is a real difference


def test_actor_term_is_minus_alpha_when_all_q_are_positive_and_plus_alpha_when_negative():
    pi = a = a_recon = np.zeros((3, 2))
    q = np.array([1.0, 4.0, 10.0])
    low = np.full(3, -100.0)  # v above nothing matters: BC term 0 since π = target
    np.testing.assert_allclose(a2pr_actor_loss(pi, a, a_recon, q, low, low, np.zeros(3)), -2.5, rtol=1e-15)
    np.testing.assert_allclose(a2pr_actor_loss(pi, a, a_recon, -q, low, low, np.zeros(3)), 2.5, rtol=1e-15)
    # scale invariance of the TD3+BC normalization
    np.testing.assert_allclose(
        a2pr_actor_loss(pi, a, a_recon, q * 1e6, low, low, np.zeros(3), alpha=1.0), -1.0, rtol=1e-15
    )


def test_ties_follow_the_official_comparisons():
    pi, a, a_recon = np.zeros((3, 1)), np.ones((3, 1)), np.full((3, 1), 2.0)
    q_pi = np.ones(3)
    # row 0: q_recon = q_a → ã (≥), m = 2; row 1: q_recon = v → counted; row 2: q_a = v → not
    q_a, q_recon, v = np.array([2.0, 0.0, 1.0]), np.array([2.0, 1.0, 0.0]), np.array([1.0, 1.0, 1.0])
    # row 0: m 2, target 2 → 8; row 1: A_π = 0 ≥ −1 → ã, m = 1 → 4; row 2: A_a = 0 > −1 → a, m = 0
    np.testing.assert_allclose(
        a2pr_actor_loss(pi, a, a_recon, q_pi, q_a, q_recon, v), -2.5 + 12 / 3, rtol=1e-15
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_advantages_are_compared_after_rounding_as_in_the_code(backend):
    # fl(1 + 1e8) = fl(1 + 1e-9 + 1e8): the advantages tie and ã wins, although q_recon < q_a
    args = (np.zeros((1, 1)), np.ones((1, 1)), np.full((1, 1), 3.0), np.ones(1))
    q_a, q_recon, v = np.array([1.0 + 1e-9]), np.array([1.0]), np.array([-1e8])
    got = _loss(*args, q_a, q_recon, v, backend=backend)
    np.testing.assert_allclose(got, -2.5 + 2 * 9.0, rtol=1e-15)  # m = 2, (0 − 3)²


def test_float32_stays_float32():
    args = [x.astype(np.float32) for x in _random_batch(6)]
    loss, pullback = refimpl.vjp(a2pr_actor_loss, *args)
    assert loss.dtype == np.float32
    assert all(g.dtype == np.float32 for g in pullback(np.float32(1.0)))
    np.testing.assert_allclose(loss, a2pr_actor_loss(*[x.astype(float) for x in args]), rtol=1e-5)


def test_bad_input_is_refused():
    x, q = np.ones((2, 1)), np.array([1.0, 2.0])
    with pytest.raises(refimpl.InputError, match=r"'q_pi'.*nonzero"):
        a2pr_actor_loss(x, x, x, np.zeros(2), q, q, q)
    with pytest.raises(refimpl.InputError, match="'alpha'"):
        a2pr_actor_loss(x, x, x, q, q, q, q, alpha=0.0)
    with pytest.raises(refimpl.InputError, match="'bc_weight'"):
        a2pr_actor_loss(x, x, x, q, q, q, q, bc_weight=-1.0)
    with pytest.raises(refimpl.InputError, match="'a_recon'"):
        a2pr_actor_loss(x, x, np.ones((2, 2)), q, q, q, q)
