"""ELR: hand values, the official update-then-loss call, the clamp's gradient mask, the stable
1 − ⟨t, p⟩, and the memory update touching only the batch's rows."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import elr_loss, elr_target_update
from refimpl.regularizers.elr import elr_loss_backward


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _batch(seed=0, B=4, K=5, N=9):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((B, K)) * 2
    y = rng.integers(0, K, B)
    idx = rng.choice(N, B, replace=False)
    memory = rng.dirichlet(np.ones(K), size=N) * 0.8
    return z, y, idx, memory


def test_loss_matches_hand_computed_value():
    z, y, idx = np.array([[0.0, np.log(3.0)]]), np.array([1]), np.array([0])
    t = np.array([[0.0, 0.5]])  # p = [1/4, 3/4], ⟨t, p⟩ = 3/8
    np.testing.assert_allclose(elr_loss(z, y, idx, t, lam=2.0), np.log(4 / 3) + 2 * np.log(5 / 8), rtol=1e-15)
    _, pullback = refimpl.vjp("elr_loss", z, y, idx, t, lam=2.0)
    # CE: p − Y = [1/4, −1/4]; ELR: −p_c (t_c − 3/8)/(5/8) = [−(1/4)(−3/8), −(3/4)(1/8)]/(5/8)
    elr = np.array([0.25 * 0.375, -0.75 * 0.125]) / 0.625
    np.testing.assert_allclose(
        pullback(np.array(1.0))[0], [[0.25 + 2 * elr[0], -0.25 + 2 * elr[1]]], rtol=1e-14
    )


def test_update_matches_hand_computed_values_and_touches_only_the_batch_rows():
    z, _, idx, memory = _batch()
    new = elr_target_update(z, idx, memory, beta=0.7)
    untouched = np.setdiff1d(np.arange(memory.shape[0]), idx)
    np.testing.assert_array_equal(new[untouched], memory[untouched])
    np.testing.assert_allclose(new[idx], 0.7 * memory[idx] + 0.3 * _softmax(z), rtol=1e-15)
    assert not np.shares_memory(new, memory)


def test_update_with_clamp_renormalizes_the_clamped_probabilities():
    z = np.array([[60.0, 0.0, -3.0]])
    new = elr_target_update(z, np.array([0]), np.zeros((1, 3)), beta=0.0, clamp=True)
    clamped = np.array([1 - 1e-4, 1e-4, 1e-4])
    np.testing.assert_allclose(new[0], clamped / clamped.sum(), rtol=1e-15)


def test_memory_rows_sum_to_one_minus_beta_to_the_m():
    rng = np.random.default_rng(1)
    memory = np.zeros((3, 4))
    for _ in range(6):
        memory = elr_target_update(rng.standard_normal((3, 4)), np.arange(3), memory, beta=0.9)
    np.testing.assert_allclose(memory.sum(axis=1), 1 - 0.9**6, rtol=1e-14)


@pytest.mark.parametrize("clamp", [False, True])
def test_lambda_zero_is_the_mean_cross_entropy(clamp):
    z, y, idx, memory = _batch(2)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    expected = -log_p[np.arange(z.shape[0]), y].mean()
    np.testing.assert_allclose(elr_loss(z, y, idx, memory, lam=0.0, clamp=clamp), expected, rtol=1e-14)


def test_zero_memory_gives_zero_regularizer_and_gradient():
    z, y, idx, memory = _batch(3)
    memory[:] = 0.0
    _, pullback_elr = refimpl.vjp("elr_loss", z, y, idx, memory, lam=7.0)
    _, pullback_ce = refimpl.vjp("elr_loss", z, y, idx, memory, lam=0.0)
    # D = Σ_k p_k·1 = 1 up to rounding: the ELR part is p·(1/D − 1), of size p·eps
    np.testing.assert_allclose(
        pullback_elr(np.array(1.0))[0], pullback_ce(np.array(1.0))[0], rtol=1e-14, atol=1e-15
    )


def test_saturated_row_gets_zero_elr_gradient_under_the_clamp():
    z = np.array([[60.0, 0.0, -3.0]])
    y, idx, t = np.array([1]), np.array([0]), np.array([[0.3, 0.2, 0.1]])
    _, pullback_elr = refimpl.vjp("elr_loss", z, y, idx, t, lam=3.0, clamp=True)
    _, pullback_ce = refimpl.vjp("elr_loss", z, y, idx, t, lam=0.0, clamp=True)
    np.testing.assert_array_equal(pullback_elr(np.array(1.0))[0], pullback_ce(np.array(1.0))[0])


def test_clamp_gradient_mask_includes_its_bounds():
    # p_0 exactly at the bound 1e-4 passes the gradient (torch.clamp), p_2 = 1e-6 below it does not
    p = np.array([[1e-4, 0.5, 1e-6, 0.0]])
    p[0, 3] = 1 - p[0, :3].sum()
    t = np.array([[0.4, 0.3, 0.2, 0.1]])
    d = 1 - (t * np.clip(p, 1e-4, 1 - 1e-4)).sum(-1)
    (g,) = elr_loss_backward((p, np.array([1]), t, d, 1.0, True), np.array(1.0))
    a = -np.array([[0.4, 0.3, 0.0, 0.1]]) / d  # a_k = −m_k t_k/D with m = [1, 1, 0, 1]
    expected = p * (a - (a * p).sum()) + p - np.array([[0.0, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(g, expected, rtol=1e-13, atol=1e-18)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unclamped_saturated_row_keeps_its_digits(dtype):
    # t = e_0, logit gap 40: 1 − ⟨t, p⟩ = 1 − p_0 ≈ e^{−40}(1 + e^{-1}·…) — a log-sum-exp rounds it to 0
    z = np.array([[40.0, 0.0, -2.0, 1.0]], dtype)
    t = np.array([[1.0, 0.0, 0.0, 0.0]], dtype)
    loss, pullback = refimpl.vjp("elr_loss", z, np.array([0]), np.array([0]), t, lam=1.0)
    exact = np.log(np.exp(np.array([0.0, -2.0, 1.0]) - 40.0).sum())  # log Σ_{k≠0} p_k, p_0 ≈ 1
    np.testing.assert_allclose(loss, exact, rtol=1e-6)
    (g,) = pullback(np.array(1.0, dtype))
    assert g.dtype == dtype and np.all(np.isfinite(g))
    # ELR gradient −p_c(t_c − ⟨t,p⟩)/D: ≈ −1 at the saturated class, ≈ p_k/D at the others
    others = np.exp(np.array([0.0, -2.0, 1.0]))
    np.testing.assert_allclose(g[0, 1:], others / others.sum(), rtol=1e-5)


def test_catalog_form_of_one_minus_t_dot_p_underflows_where_this_one_does_not():
    from refimpl.authoring import log_softmax

    z = np.array([[40.0, 0.0, -2.0, 1.0]])
    t = np.array([[1.0, 0.0, 0.0, 0.0]])
    # (1 − Σt) + Σ t_k (1 − p_k), 1 − p_k = −expm1(log-softmax): the lse rounds log(1 + ε) to 0
    catalog_form = (1 - t.sum()) + (t * -np.expm1(log_softmax(z))).sum()
    assert catalog_form == 0.0
    loss = elr_loss(z, np.array([0]), np.array([0]), t, lam=1.0)
    assert np.isfinite(loss) and loss < -30  # log D ≈ log(1.6e-17) ≈ −38


def _official_elr_step(torch, z, y, idx, memory, beta, lam):
    """The official ELR forward (shengliu66/ELR, ``elr_loss.forward``), in float64."""
    output = torch.tensor(z, requires_grad=True)
    target = torch.tensor(memory)
    index = torch.tensor(idx)
    label = torch.tensor(y)
    y_pred = torch.nn.functional.softmax(output, dim=1)
    y_pred = torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)
    y_pred_ = y_pred.data.detach()
    target[index] = beta * target[index] + (1 - beta) * (y_pred_ / y_pred_.sum(dim=1, keepdim=True))
    ce_loss = torch.nn.functional.cross_entropy(output, label)
    elr_reg = (1 - (target[index] * y_pred).sum(dim=1)).log().mean()
    final_loss = ce_loss + lam * elr_reg
    final_loss.backward()
    return final_loss.item(), output.grad.numpy(), target.numpy()


@pytest.mark.parametrize("seed", range(4))
def test_update_then_loss_matches_the_official_single_call(seed):
    torch = pytest.importorskip("torch")
    z, y, idx, memory = _batch(seed, B=5, K=4, N=8)
    z[0] = [30.0, 0.0, -1.0, 2.0]  # a saturated row: the clamp's mask matters
    official_loss, official_grad, official_memory = _official_elr_step(torch, z, y, idx, memory, 0.7, 3.0)
    new_memory = elr_target_update(z, idx, memory, beta=0.7, clamp=True)
    loss, pullback = refimpl.vjp("elr_loss", z, y, idx, new_memory, lam=3.0, clamp=True)
    np.testing.assert_allclose(new_memory, official_memory, rtol=1e-15)
    np.testing.assert_allclose(loss, official_loss, rtol=1e-14)
    np.testing.assert_allclose(
        pullback(np.array(1.0))[0], official_grad, rtol=1e-12, atol=1e-15
    )  # p_c − 1 ≈ −1e-12 cancels


def test_using_the_old_targets_differs_from_the_official_order():
    torch = pytest.importorskip("torch")
    z, y, idx, memory = _batch(5)
    official_loss, _, _ = _official_elr_step(torch, z, y, idx, memory, 0.7, 3.0)
    stale = elr_loss(z, y, idx, memory, lam=3.0, clamp=True)
    assert abs(float(stale) - official_loss) > 1e-3


@pytest.mark.parametrize(
    ("targets", "kwargs", "argument"),
    [
        (np.full((9, 5), 1.2), {}, "targets"),
        (np.ones((9, 5)), {}, "targets"),
        (np.full((9, 5), 0.5), {"clamp": True}, "targets"),
        (np.full((9, 5), 0.1), {"lam": -1.0}, "lam"),
    ],
)
def test_bad_input_raises_input_error_naming_op_and_argument(targets, kwargs, argument):
    z, y, idx, _ = _batch()
    with pytest.raises(refimpl.InputError, match=rf"^elr_loss: argument '{argument}'"):
        elr_loss(z, y, idx, targets, **{"lam": 3.0, **kwargs})


def test_repeated_indices_are_refused():
    z, y, _, memory = _batch()
    with pytest.raises(refimpl.InputError, match=r"^elr_target_update: argument 'idx'.*distinct"):
        elr_target_update(z, np.array([1, 2, 2, 3]), memory, beta=0.7)
