"""BA-LoRA SVD regularizer: hand values, bounds, scale and rotation invariance, the
reshape of token logits, k ≥ rank, and a tie σ_k = σ_{k+1} (checked for the forward only)."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import balora_svd_loss

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _vjp(z, backend="numpy", cotangent=1.0, **kwargs):
    loss, pullback = refimpl.vjp("balora_svd_loss", z, backend=_backend(backend), **kwargs)
    return loss, pullback(np.array(cotangent))[0]


def _with_spectrum(seed, rows, cols, sigma):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((rows, len(sigma))))
    v, _ = np.linalg.qr(rng.standard_normal((cols, len(sigma))))
    return (u * sigma) @ v.T


def _official(z, k):
    """cyp-jlu-ai/BA-LoRA train.py, svd_regularization, with `s[:, :k]` read as `s[:k]` (1-D
    singular values): −Σ_{i≤k} σ_i/(Σσ_i + 1e-10), under no_grad."""
    s = np.linalg.svd(z.reshape(z.shape[0], -1), compute_uv=False)
    return -s[:k].sum() / (s.sum() + 1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_svd_loss_hand_computed_values(backend):
    loss, g = _vjp(np.diag([3.0, 1.0]), k=1, backend=backend)
    np.testing.assert_allclose(loss, -0.75, rtol=1e-14)
    np.testing.assert_allclose(g, [[-1 / 16, 0.0], [0.0, 3 / 16]], rtol=1e-12, atol=1e-16)
    # default k = 3 on σ = (4, 3, 2, 1): −9/10, c = 0.09 − 0.1 on the top 3
    z = np.hstack([np.diag([4.0, 3.0, 2.0, 1.0]), np.zeros((4, 2))])
    loss, g = _vjp(z, backend=backend)
    np.testing.assert_allclose(loss, -0.9, rtol=1e-14)
    np.testing.assert_allclose(g[:, :4], np.diag([-0.01, -0.01, -0.01, 0.09]), rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_svd_loss_matches_the_paper_formula_the_official_code_logs(backend):
    z = _with_spectrum(0, 5, 8, np.array([5.0, 3.0, 2.5, 1.0, 0.2]))
    for k in (1, 2, 3):
        got = _backend(backend).get("balora_svd_loss")(z, k=k)
        np.testing.assert_allclose(got, _official(z, k), rtol=1e-9)
        np.testing.assert_allclose(got, -[5.0, 8.0, 10.5][k - 1] / 11.7, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_svd_loss_is_scale_and_rotation_invariant(backend):
    z = _with_spectrum(1, 4, 6, np.array([4.0, 2.0, 1.5, 0.5]))
    loss, g = _vjp(z, k=2, backend=backend)
    np.testing.assert_allclose(loss, -6.0 / 8.0, rtol=1e-12)
    scaled, scaled_g = _vjp(1e3 * z, k=2, backend=backend)
    np.testing.assert_allclose(scaled, loss, rtol=1e-12)
    np.testing.assert_allclose(scaled_g, g / 1e3, rtol=1e-9, atol=1e-15)
    # degree-0 homogeneous: Euler's ⟨∇L, Z⟩ = 0
    np.testing.assert_allclose((g * z).sum(), 0.0, atol=1e-14)
    q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((4, 4)))
    np.testing.assert_allclose(_vjp(q @ z, k=2, backend=backend)[0], loss, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_svd_loss_bounds_and_k_at_least_the_rank(backend):
    z = _with_spectrum(3, 3, 7, np.array([2.0, 1.0, 0.5]))
    loss, _ = _vjp(z, k=1, backend=backend)
    assert -1.0 < float(loss) < -1.0 / 3.0
    for k in (3, 5):
        loss, g = _vjp(z, k=k, backend=backend)
        np.testing.assert_allclose(loss, -1.0, rtol=1e-14)
        np.testing.assert_allclose(g, 0.0, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_svd_loss_reshapes_token_logits_to_batch_rows(backend):
    z = _with_spectrum(4, 3, 8, np.array([3.0, 2.0, 1.0]))
    flat_loss, flat_g = _vjp(z, k=2, backend=backend)
    loss, g = _vjp(z.reshape(3, 2, 4), k=2, backend=backend)  # view(B, −1)
    np.testing.assert_allclose(loss, flat_loss, rtol=1e-14)
    np.testing.assert_allclose(g, flat_g.reshape(3, 2, 4), rtol=1e-12, atol=1e-16)
    # not (B·T, V): the singular values of the other reshape differ
    assert abs(float(balora_svd_loss(z.reshape(6, 4), k=2)) - float(loss)) > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_svd_loss_tie_at_sigma_k_forward_only(backend):
    # σ_2 = σ_3: T = σ_1 + σ_2 is not differentiable there (the backward depends on the basis
    # LAPACK picks), but the forward is exact; the conformance samples keep a gap instead.
    z = _with_spectrum(5, 4, 5, np.array([3.0, 2.0, 2.0, 1.0]))
    got = _backend(backend).get("balora_svd_loss")(z, k=2)
    np.testing.assert_allclose(got, -5.0 / 8.0, rtol=1e-12)


def test_balora_svd_loss_official_code_gives_no_gradient_the_paper_one_does():
    deviation = next(
        d for d in refimpl.get("balora_svd_loss").deviations if d.name == "balora-svd-no-gradient"
    )
    z = deviation.example.args[0]
    _, g = _vjp(z, k=1)
    assert np.abs(g).max() > 0.1  # the paper's loss moves the logits; the official one cannot


def test_balora_svd_loss_refuses_zero_and_one_dimensional_logits():
    with pytest.raises(refimpl.InputError, match=r"'z'.*nonzero"):
        balora_svd_loss(np.zeros((3, 4)))
    with pytest.raises(refimpl.InputError, match=r"'z'.*at least 2 dimensions"):
        balora_svd_loss(np.ones(4))
    with pytest.raises(refimpl.InputError, match="'k'"):
        balora_svd_loss(np.eye(3), k=0)
