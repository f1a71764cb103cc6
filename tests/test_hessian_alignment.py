"""Hessian alignment: linear-head gradient, HVP and diagonal, Hutchinson, the penalty and its W-gradient."""

import itertools

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import (
    hessian_alignment_penalty,
    hutchinson_hessian_diag,
    softmax_head_gradient,
    softmax_head_hessian_diag,
    softmax_head_hvp,
)


def _mean_cross_entropy(W, h, y):
    z = h @ W.T
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def _numeric_gradient(f, W, h=1e-6):
    grad = np.zeros_like(W)
    for index in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[index] = h
        grad[index] = (f(W + E) - f(W - E)) / (2 * h)
    return grad


def _head(seed, K=3, D=4, n=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((K, D)), rng.standard_normal((n, D)), rng.integers(0, K, size=n)


def _full_hessian(W, h):
    """The (KD × KD) Hessian, one column per basis direction through softmax_head_hvp."""
    K, D = W.shape
    columns = []
    for k, d in itertools.product(range(K), range(D)):
        E = np.zeros((K, D))
        E[k, d] = 1.0
        columns.append(softmax_head_hvp(W, h, E).ravel())
    return np.stack(columns, axis=1)


# -- closed forms of the linear head ----------------------------------------------------------------
def test_softmax_head_gradient_hand_value_at_the_zero_head():
    g = softmax_head_gradient(np.zeros((2, 1)), np.array([[1.0], [2.0]]), np.array([0, 1]))
    np.testing.assert_array_equal(g, [[0.25], [-0.25]])  # p = ½: ((½−1)·1 + ½·2)/2, (½·1 + (½−1)·2)/2


def test_softmax_head_gradient_is_the_derivative_of_the_mean_cross_entropy():
    W, h, y = _head(0)
    numeric = _numeric_gradient(lambda V: _mean_cross_entropy(V, h, y), W)
    np.testing.assert_allclose(softmax_head_gradient(W, h, y), numeric, rtol=1e-7, atol=1e-9)


def test_softmax_head_hvp_is_the_directional_derivative_of_the_gradient():
    W, h, y = _head(1)
    V = np.random.default_rng(2).standard_normal(W.shape)
    step = 1e-6
    numeric = (softmax_head_gradient(W + step * V, h, y) - softmax_head_gradient(W - step * V, h, y)) / (
        2 * step
    )
    np.testing.assert_allclose(softmax_head_hvp(W, h, V), numeric, rtol=1e-7, atol=1e-9)


def test_softmax_head_hessian_is_symmetric_positive_semidefinite_and_label_free():
    W, h, _ = _head(3)
    H = _full_hessian(W, h)
    np.testing.assert_allclose(H, H.T, atol=1e-15)
    assert np.linalg.eigvalsh(H).min() > -1e-12  # CE of a linear head is convex in W


def test_hgp_identity_hessian_times_gradient_equals_norm_times_gradient_of_norm():
    W, h, y = _head(4)
    g = softmax_head_gradient(W, h, y)
    grad_of_norm = _numeric_gradient(lambda V: float(np.linalg.norm(softmax_head_gradient(V, h, y))), W)
    np.testing.assert_allclose(
        softmax_head_hvp(W, h, g), np.linalg.norm(g) * grad_of_norm, rtol=1e-7, atol=1e-10
    )


def test_hvp_of_a_zero_gradient_is_zero():
    W, h, _ = _head(5)
    np.testing.assert_array_equal(softmax_head_hvp(W, h, np.zeros_like(W)), 0.0)


def test_softmax_head_hessian_diag_is_the_diagonal_of_the_full_hessian():
    W, h, _ = _head(6)
    expected = np.diag(_full_hessian(W, h)).reshape(W.shape)
    np.testing.assert_allclose(softmax_head_hessian_diag(W, h), expected, rtol=1e-13, atol=1e-16)
    np.testing.assert_array_equal(
        softmax_head_hessian_diag(np.zeros((2, 1)), np.array([[2.0]])), [[1.0], [1.0]]
    )


def test_softmax_head_hessian_diag_keeps_its_digits_on_saturated_rows():
    # logits (40, 0): p_1 = σ(−40) ≈ 4.2e-18; s = p_0 p_1 with p_0 = 1 − p_1 (a subtraction gives 0)
    W, h = np.array([[20.0], [0.0]]), np.array([[2.0]])
    p_small = np.exp(-40) / (1 + np.exp(-40))
    expected = 4 * p_small * (1 - p_small)
    np.testing.assert_allclose(softmax_head_hessian_diag(W, h), [[expected], [expected]], rtol=1e-14)


def test_softmax_head_hvp_vjp_in_w_is_the_third_derivative_term():
    # ⟨U, H(W)[V]⟩ differentiated in W by central differences
    W, h, _ = _head(7)
    rng = np.random.default_rng(8)
    V, U = rng.standard_normal(W.shape), rng.standard_normal(W.shape)
    _, pullback = refimpl.vjp("softmax_head_hvp", W, h, V)
    g_W, g_V = pullback(U)
    numeric = _numeric_gradient(lambda A: float(np.sum(U * softmax_head_hvp(A, h, V))), W)
    np.testing.assert_allclose(g_W, numeric, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(g_V, softmax_head_hvp(W, h, U), rtol=1e-13)  # H symmetric


# -- Hutchinson -----------------------------------------------------------------------------------
def test_hutchinson_over_all_sign_probes_equals_the_exact_diagonal_of_a_small_head():
    W, h, _ = _head(9, K=2, D=3, n=5)  # P = 6 parameters, 64 sign vectors
    probes = np.array(list(itertools.product([-1.0, 1.0], repeat=W.size)))
    hvps = np.stack([softmax_head_hvp(W, h, z.reshape(W.shape)).ravel() for z in probes])
    estimate = hutchinson_hessian_diag(probes, hvps)
    np.testing.assert_allclose(estimate, softmax_head_hessian_diag(W, h).ravel(), rtol=1e-13, atol=1e-16)


def test_hutchinson_with_official_probes_is_within_its_standard_error():
    # official probes: z = 2·randint(0, 2) − 1, S = 300 repeats
    W, h, _ = _head(10)
    rng = np.random.default_rng(11)
    probes = 2.0 * rng.integers(0, 2, size=(300, W.size)) - 1
    hvps = np.stack([softmax_head_hvp(W, h, z.reshape(W.shape)).ravel() for z in probes])
    H = _full_hessian(W, h)
    # Var[z_j (Hz)_j] = Σ_{k≠j} H_jk² for Rademacher z
    standard_error = np.sqrt((H**2).sum(axis=1) - np.diag(H) ** 2) / np.sqrt(300)
    error = np.abs(hutchinson_hessian_diag(probes, hvps) - np.diag(H))
    assert np.all(error <= 5 * standard_error + 1e-15)
    assert np.mean(error) < 2 * np.mean(standard_error)


def test_hutchinson_is_exact_for_a_diagonal_hessian_with_any_probe():
    probe = np.array([[1.0, -1.0, -1.0]])
    np.testing.assert_array_equal(hutchinson_hessian_diag(probe, probe * [2.0, 3.0, 0.5]), [2.0, 3.0, 0.5])


# -- the penalty ----------------------------------------------------------------------------------
def test_penalty_hand_value():
    g, A = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[2.0, 0.0], [0.0, 0.0]])
    loss, penalty = hessian_alignment_penalty(
        np.array([1.0, 3.0]), g, A, g.mean(axis=0), A.mean(axis=0), alpha=1.0, beta=2.0
    )
    # curvature gaps (±1, 0): Σ = 2; gradient gaps (±½, ∓½): Σ = 1 → (1·2 + 2·1)/2 = 2
    assert float(penalty) == 2.0
    assert float(loss) == 4.0


def test_penalty_is_zero_with_zero_gradient_when_environments_coincide():
    rng = np.random.default_rng(12)
    g, A = rng.standard_normal(5), rng.standard_normal(5)
    args = (np.array([0.3, 0.3, 0.3]), np.tile(g, (3, 1)), np.tile(A, (3, 1)), g, A)
    (loss, penalty), pullback = refimpl.vjp("hessian_alignment_penalty", *args, alpha=1.0, beta=1.0)
    assert float(penalty) == 0.0 and float(loss) == pytest.approx(0.3, rel=1e-15)
    g_losses, g_grads, g_curvatures = pullback((np.array(1.0), np.array(1.0)))
    np.testing.assert_array_equal(g_losses, 1 / 3)
    np.testing.assert_array_equal(g_grads, 0.0)
    np.testing.assert_array_equal(g_curvatures, 0.0)


def test_penalty_vjp_formula():
    rng = np.random.default_rng(13)
    losses, G, A = rng.standard_normal(3), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    g_bar, A_bar = rng.standard_normal(4), rng.standard_normal(4)
    _, pullback = refimpl.vjp("hessian_alignment_penalty", losses, G, A, g_bar, A_bar, alpha=0.3, beta=0.7)
    g_losses, g_grads, g_curvatures = pullback((np.array(2.0), np.array(0.5)))
    np.testing.assert_allclose(g_losses, 2.0 / 3, rtol=1e-15)
    np.testing.assert_allclose(g_grads, 2.5 * 2 * 0.7 * (G - g_bar) / 3, rtol=1e-14)
    np.testing.assert_allclose(g_curvatures, 2.5 * 2 * 0.3 * (A - A_bar) / 3, rtol=1e-14)


# -- the objective as a function of the head W: the chained VJPs against finite differences -------
def _environments(seed):
    rng = np.random.default_rng(seed)
    K, D = 3, 2
    envs = []
    for n in (4, 6, 5):
        h = rng.standard_normal((n, D)) + rng.standard_normal(D)  # each environment shifted
        envs.append((h, rng.integers(0, K, size=n)))
    return rng.standard_normal((K, D)), envs


def _signals(W, envs, variant):
    losses = np.array([_mean_cross_entropy(W, h, y) for h, y in envs])
    grads = [softmax_head_gradient(W, h, y) for h, y in envs]
    if variant == "hgp":
        curvatures = [softmax_head_hvp(W, h, g) for (h, _), g in zip(envs, grads, strict=True)]
    else:
        curvatures = [softmax_head_hessian_diag(W, h) for h, _ in envs]
    return losses, np.stack([g.ravel() for g in grads]), np.stack([a.ravel() for a in curvatures])


def _mean_signals(W, envs, variant):
    """ḡ and Ā of the mean loss: H̄ = mean_e H_e, ḡ = mean_e g_e (stop-gradient in the objective)."""
    _, G, _ = _signals(W, envs, variant)
    g_bar = G.mean(axis=0)
    if variant == "hgp":
        A_bar = np.mean([softmax_head_hvp(W, h, g_bar.reshape(W.shape)).ravel() for h, _ in envs], axis=0)
    else:
        A_bar = np.mean([softmax_head_hessian_diag(W, h).ravel() for h, _ in envs], axis=0)
    return g_bar, A_bar


def _objective(W, envs, variant, g_bar, A_bar, alpha, beta):
    losses, G, A = _signals(W, envs, variant)
    loss, _ = hessian_alignment_penalty(losses, G, A, g_bar, A_bar, alpha=alpha, beta=beta)
    return float(loss)


def _objective_gradient(W, envs, variant, g_bar, A_bar, alpha, beta):
    """W̄ by chaining the ops' VJPs (HGP: through softmax_head_hvp in both W and V)."""
    losses, G, A = _signals(W, envs, variant)
    _, pullback = refimpl.vjp("hessian_alignment_penalty", losses, G, A, g_bar, A_bar, alpha=alpha, beta=beta)
    g_losses, g_G, g_A = pullback((np.array(1.0), np.array(0.0)))
    g_W = np.zeros_like(W)
    for e, (h, y) in enumerate(envs):
        g_e = G[e].reshape(W.shape)
        g_W += g_losses[e] * g_e  # ∂L_e/∂W = g_e
        cotangent_of_g = g_G[e].reshape(W.shape)
        if variant == "hgp":  # A_e = H_e(W)[g_e(W)]
            _, hvp_pullback = refimpl.vjp("softmax_head_hvp", W, h, g_e)
            through_W, through_V = hvp_pullback(g_A[e].reshape(W.shape))
            g_W += through_W
            cotangent_of_g = cotangent_of_g + through_V
        else:  # A_e = diag H_e(W)
            _, diag_pullback = refimpl.vjp("softmax_head_hessian_diag", W, h)
            g_W += diag_pullback(g_A[e].reshape(W.shape))[0]
        _, gradient_pullback = refimpl.vjp("softmax_head_gradient", W, h, y)
        g_W += gradient_pullback(cotangent_of_g)[0]
    return g_W


@pytest.mark.parametrize("variant", ["hgp", "exact_diag"])
def test_objective_gradient_in_the_head_matches_finite_differences(variant):
    W, envs = _environments(14)
    g_bar, A_bar = _mean_signals(W, envs, variant)  # held fixed: stop-gradient
    alpha, beta = 0.7, 0.4
    analytic = _objective_gradient(W, envs, variant, g_bar, A_bar, alpha, beta)
    numeric = _numeric_gradient(lambda V: _objective(V, envs, variant, g_bar, A_bar, alpha, beta), W)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_hgp_mean_curvature_differs_from_the_mean_of_environment_curvatures():
    # H̄ḡ ≠ mean_e H_e g_e: Ā must be computed for the mean loss, not averaged
    W, envs = _environments(15)
    _, _, A = _signals(W, envs, "hgp")
    _, A_bar = _mean_signals(W, envs, "hgp")
    assert np.abs(A.mean(axis=0) - A_bar).max() > 1e-3


def test_penalty_refuses_mismatched_parameter_counts():
    G = np.zeros((2, 3))
    with pytest.raises(refimpl.InputError, match=r"'curvatures'.*P = 3"):
        hessian_alignment_penalty(
            np.zeros(2), G, np.zeros((2, 4)), np.zeros(3), np.zeros(3), alpha=1.0, beta=1.0
        )
