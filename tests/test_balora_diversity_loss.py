"""BA-LoRA diversity regularizer: hand values, the official NLU covariance and NLG entropy
terms (with and without its 1e-10), the catalog's VJP, the invariances of both."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import balora_diversity_loss

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _vjp(z, backend="numpy", cotangent=1.0, **kwargs):
    loss, pullback = refimpl.vjp("balora_diversity_loss", z, backend=_backend(backend), **kwargs)
    return loss, pullback(np.array(cotangent))[0]


def _official_nlu(z):
    """cyp-jlu-ai/BA-LoRA train.py (task_type 'nlu'), transcribed: centred logits, covariance
    /(B − 1), `cov − diag(diag(cov))`, Σ off² / dim."""
    batch, dim = z.shape
    centered = z - z.mean(axis=0)
    cov = centered.T @ centered / (batch - 1)
    off_diagonal = cov - np.diag(np.diag(cov))
    return np.sum(off_diagonal**2) / dim


def _official_nlg(z):
    """The same file (task_type 'nlg'): −entropy with `−Σ p log(p + 1e-10)`, mean over positions."""
    e = np.exp(z - z.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    return -(-np.sum(p * np.log(p + 1e-10), axis=-1).mean())


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_diversity_loss_hand_computed_values(backend):
    # rows (1, 1), (−1, −1): C = [[2, 2], [2, 2]], L = (4 + 4)/2; Z̄ = (4/(2·1)) Z_c C_off
    loss, g = _vjp(np.array([[1.0, 1.0], [-1.0, -1.0]]), variant="nlu", backend=backend)
    np.testing.assert_allclose(loss, 4.0, rtol=1e-14)
    np.testing.assert_allclose(g, [[4.0, 4.0], [-4.0, -4.0]], rtol=1e-14)
    # p = (¾, ¼): Σ p log p, gradient p ⊙ (log p + H)
    loss, g = _vjp(np.array([[math.log(3.0), 0.0]]), variant="nlg", backend=backend)
    negentropy = 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    np.testing.assert_allclose(loss, negentropy, rtol=1e-14)
    expected = [0.75 * (math.log(0.75) - negentropy), 0.25 * (math.log(0.25) - negentropy)]
    np.testing.assert_allclose(g, [expected], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_diversity_loss_matches_the_official_formulas(backend):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((7, 5)) * 2 + rng.standard_normal(5)
    got = _backend(backend).get("balora_diversity_loss")(z, variant="nlu")
    np.testing.assert_allclose(got, _official_nlu(z), rtol=1e-13)
    tokens = rng.standard_normal((3, 4, 9)) * 3
    official = _backend(backend).get("balora_diversity_loss")(tokens, variant="nlg", log_eps=1e-10)
    np.testing.assert_allclose(official, _official_nlg(tokens), rtol=1e-13)
    exact = _backend(backend).get("balora_diversity_loss")(tokens, variant="nlg")
    np.testing.assert_allclose(exact, official, rtol=1e-7)  # 1e-10 inside the log: a small shift


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_diversity_loss_nlu_gradient_is_the_catalog_formula(backend):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 4))
    loss, g = _vjp(z, variant="nlu", backend=backend, cotangent=0.5)
    batch, d = z.shape
    z_c = z - z.mean(axis=0)
    c_off = z_c.T @ z_c / (batch - 1)
    np.fill_diagonal(c_off, 0.0)
    np.testing.assert_allclose(g, 0.5 * 4 / (d * (batch - 1)) * z_c @ c_off, rtol=1e-12)
    np.testing.assert_allclose(g.sum(axis=0), 0.0, atol=1e-14)  # the centring: columns sum to 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_diversity_loss_nlu_invariances(backend):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((5, 4))
    loss, g = _vjp(z, variant="nlu", backend=backend)
    # a translation of every row changes nothing; a scale c gives c⁴ (C scales by c²)
    np.testing.assert_allclose(
        _vjp(z + 10 * rng.standard_normal(4), variant="nlu", backend=backend)[0], loss, rtol=1e-11
    )
    np.testing.assert_allclose(_vjp(3 * z, variant="nlu", backend=backend)[0], 81 * loss, rtol=1e-12)
    # decorrelated (orthogonal, centred) columns: C diagonal, no penalty and no gradient
    orthogonal = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]) * [2.0, 0.5]
    loss, g = _vjp(orthogonal, variant="nlu", backend=backend)
    np.testing.assert_allclose(loss, 0.0, atol=1e-15)
    np.testing.assert_allclose(g, 0.0, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_diversity_loss_nlg_is_minus_entropy_minimal_at_uniform(backend):
    rng = np.random.default_rng(3)
    loss, g = _vjp(np.full((2, 3, 6), -1.5), variant="nlg", backend=backend)
    np.testing.assert_allclose(loss, -math.log(6.0), rtol=1e-14)  # the maximal entropy log V
    np.testing.assert_allclose(g, 0.0, atol=1e-15)
    z = rng.standard_normal((2, 3, 6)) * 2
    loss, g = _vjp(z, variant="nlg", backend=backend)
    assert float(loss) > -math.log(6.0) + 1e-3
    np.testing.assert_allclose(g.sum(axis=-1), 0.0, atol=1e-15)  # invariant to a shift per position
    np.testing.assert_allclose(_vjp(z + 50.0, variant="nlg", backend=backend)[0], loss, rtol=1e-12)
    # mean over positions: (B, T, V) and (B·T, V) agree
    np.testing.assert_allclose(_vjp(z.reshape(6, 6), variant="nlg", backend=backend)[0], loss, rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_diversity_loss_official_log_eps_shifts_tiny_probabilities(backend):
    z = np.array([[0.0, -23.0]])  # p_2 = e^−23 ≈ 1.03e-10, next to the official 1e-10
    p2 = math.exp(-23.0) / (1 + math.exp(-23.0))
    p1 = 1 - p2
    exact = _vjp(z, variant="nlg", backend=backend)[0]
    official = _vjp(z, variant="nlg", log_eps=1e-10, backend=backend)[0]
    np.testing.assert_allclose(exact, p1 * math.log(p1) + p2 * math.log(p2), rtol=1e-10)
    np.testing.assert_allclose(official, p1 * math.log(p1 + 1e-10) + p2 * math.log(p2 + 1e-10), rtol=1e-10)
    assert abs(float(official) / float(exact) - 1) > 0.05


def test_balora_diversity_loss_refuses_what_the_variant_cannot_take():
    with pytest.raises(refimpl.InputError, match=r"'z'.*B >= 2"):
        balora_diversity_loss(np.ones((1, 3)), variant="nlu")
    with pytest.raises(refimpl.InputError, match="'z'.*nlu"):
        balora_diversity_loss(np.ones((2, 3, 4)), variant="nlu")
    with pytest.raises(refimpl.InputError, match="'log_eps'"):
        balora_diversity_loss(np.ones((2, 3)), variant="nlg", log_eps=-1.0)
