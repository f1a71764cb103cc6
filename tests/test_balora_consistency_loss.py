"""BA-LoRA consistency regularizer: hand values, the official NLU/NLG formulas, the
invariances of a normalized MSE and of a KL, F.normalize's clamp, batchmean over tokens."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import balora_consistency_loss

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _vjp(*args, backend="numpy", cotangent=1.0, **kwargs):
    loss, pullback = refimpl.vjp("balora_consistency_loss", *args, backend=_backend(backend), **kwargs)
    return loss, pullback(np.array(cotangent))[0]


def _official_nlu(z_ft, z_pre):
    """cyp-jlu-ai/BA-LoRA train.py (task_type 'nlu'): F.normalize(p=2, dim=-1, eps=1e-12) of both,
    then F.mse_loss (mean over all entries), transcribed in NumPy."""
    norm_ft = np.maximum(np.sqrt((z_ft**2).sum(-1, keepdims=True)), 1e-12)
    norm_pre = np.maximum(np.sqrt((z_pre**2).sum(-1, keepdims=True)), 1e-12)
    return np.mean((z_ft / norm_ft - z_pre / norm_pre) ** 2)


def _official_nlg(z_ft, z_pre):
    """The same file (task_type 'nlg'): kl_div(softmax(z_ft).log(), softmax(z_pre), 'batchmean'),
    Σ r (log r − log q) over everything divided by z_ft.size(0)."""

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    q, r = softmax(z_ft), softmax(z_pre)
    return (r * (np.log(r) - np.log(q))).sum() / z_ft.shape[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_consistency_loss_hand_computed_values(backend):
    # nlu: ẑ = (0.6, 0.8) and (0.8, 0.6), L = ½(0.04 + 0.04); ā = (−0.2, 0.2), ⟨ẑ, ā⟩ = 0.04
    loss, g = _vjp(np.array([[3.0, 4.0]]), np.array([[4.0, 3.0]]), variant="nlu", backend=backend)
    np.testing.assert_allclose(loss, 0.04, rtol=1e-13)
    np.testing.assert_allclose(g, [[(-0.2 - 0.024) / 5, (0.2 - 0.032) / 5]], rtol=1e-12)
    # nlg: KL((¾, ¼)‖(½, ½)), gradient q − r
    loss, g = _vjp(np.array([[0.0, 0.0]]), np.array([[math.log(3.0), 0.0]]), variant="nlg", backend=backend)
    np.testing.assert_allclose(loss, 0.75 * math.log(1.5) + 0.25 * math.log(0.5), rtol=1e-13)
    np.testing.assert_allclose(g, [[-0.25, 0.25]], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_consistency_loss_matches_the_official_formulas(backend):
    rng = np.random.default_rng(0)
    z_ft, z_pre = rng.standard_normal((6, 5)) * 2, rng.standard_normal((6, 5))
    got = _backend(backend).get("balora_consistency_loss")(z_ft, z_pre, variant="nlu")
    np.testing.assert_allclose(got, _official_nlu(z_ft, z_pre), rtol=1e-13)
    tokens_ft, tokens_pre = rng.standard_normal((3, 4, 7)) * 2, rng.standard_normal((3, 4, 7)) * 2
    got = _backend(backend).get("balora_consistency_loss")(tokens_ft, tokens_pre, variant="nlg")
    np.testing.assert_allclose(got, _official_nlg(tokens_ft, tokens_pre), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_consistency_loss_nlu_sees_only_directions(backend):
    rng = np.random.default_rng(1)
    z_ft, z_pre = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    scales = np.array([[1e-3], [2.0], [1e3], [7.0]])
    loss, g = _vjp(z_ft, z_pre, variant="nlu", backend=backend)
    scaled_loss, scaled_g = _vjp(z_ft * scales, z_pre / scales, variant="nlu", backend=backend)
    np.testing.assert_allclose(scaled_loss, loss, rtol=1e-12)
    np.testing.assert_allclose(scaled_g, g / scales, rtol=1e-10)  # ẑ(c z) = ẑ(z): ∂/∂z scales by 1/c
    # the gradient of a function of z/‖z‖ is orthogonal to z, row by row
    np.testing.assert_allclose((g * z_ft).sum(axis=1), 0.0, atol=1e-15)
    assert np.all(np.abs(g) > 1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_consistency_loss_is_zero_with_zero_gradient_at_the_teacher(backend):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 4, 5))
    for variant, logits in (("nlu", z[0]), ("nlg", z)):
        loss, g = _vjp(logits, logits.copy(), variant=variant, backend=backend)
        np.testing.assert_allclose(loss, 0.0, atol=1e-15)
        np.testing.assert_allclose(g, 0.0, atol=1e-15)
        loss, _ = _vjp(logits, logits + rng.standard_normal(logits.shape), variant=variant, backend=backend)
        assert float(loss) > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_consistency_loss_nlg_is_batchmean_over_tokens(backend):
    rng = np.random.default_rng(3)
    z_ft, z_pre = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 5, 6))
    loss, g = _vjp(z_ft, z_pre, variant="nlg", backend=backend)
    # (B, T, V) as (B·T, V): the same sum, divided by B·T instead of B
    flat_loss, flat_g = _vjp(z_ft.reshape(10, 6), z_pre.reshape(10, 6), variant="nlg", backend=backend)
    np.testing.assert_allclose(loss, 5 * flat_loss, rtol=1e-13)
    np.testing.assert_allclose(g, 5 * flat_g.reshape(2, 5, 6), rtol=1e-12)
    # (q − r)/B sums to 0 per position; adding a constant per position changes nothing
    np.testing.assert_allclose(g.sum(axis=-1), 0.0, atol=1e-15)
    shifted, _ = _vjp(z_ft + rng.standard_normal((2, 5, 1)) * 100, z_pre, variant="nlg", backend=backend)
    np.testing.assert_allclose(shifted, loss, rtol=1e-11)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balora_consistency_loss_zero_rows_take_f_normalize_clamp(backend):
    z_ft, z_pre = np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 0.0]])
    loss, g = _vjp(z_ft, z_pre, variant="nlu", backend=backend)
    # ẑ_ft = (0, 0), (0.6, 0.8); ẑ_pre = (1, 0), (0, 0): (1 + 0.36 + 0.64)/4
    np.testing.assert_allclose(loss, 0.5, rtol=1e-13)
    # the clamped row: ẑ = z/1e-12, so z̄ = ā/1e-12 with ā = (2/4)(0 − 1, 0)
    np.testing.assert_allclose(g[0], [-0.5e12, 0.0], rtol=1e-12)
    np.testing.assert_allclose(g[1], 0.0, atol=1e-15)  # ā ∥ ẑ: orthogonal part 0


def test_balora_consistency_loss_nlg_stays_finite_where_softmax_underflows():
    z_ft, z_pre = np.array([[0.0, -800.0]]), np.array([[0.0, 0.0]])
    with np.errstate(divide="ignore"):
        assert _official_nlg(z_ft, z_pre) == np.inf  # log(softmax) = −inf for the second class
    loss, g = _vjp(z_ft, z_pre, variant="nlg")
    np.testing.assert_allclose(loss, 0.5 * math.log(0.5) + 0.5 * (math.log(0.5) + 800.0), rtol=1e-14)
    np.testing.assert_allclose(g, [[0.5, -0.5]], rtol=1e-14)


def test_balora_consistency_loss_refuses_ranks_the_variant_cannot_take():
    with pytest.raises(refimpl.InputError, match="'z_ft'.*nlu"):
        balora_consistency_loss(np.ones((2, 3, 4)), np.ones((2, 3, 4)), variant="nlu")
    with pytest.raises(refimpl.InputError, match="'z_ft'.*nlg"):
        balora_consistency_loss(np.ones(4), np.ones(4), variant="nlg")
    with pytest.raises(refimpl.InputError, match="'z_pre'"):
        balora_consistency_loss(np.ones((2, 4)), np.ones((3, 4)), variant="nlu")
    with pytest.raises(refimpl.InputError, match="missing a required argument: 'variant'"):
        balora_consistency_loss(np.ones((2, 4)), np.ones((2, 4)))  # the variant is required
