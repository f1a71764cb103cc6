"""Checking a user's JAX implementation: VJPs come from jax.vjp."""

import jax.numpy as jnp

from refimpl_conformance.adapters import check


def jax_layer_norm(x, gamma, beta, eps):
    mu = x.mean(-1, keepdims=True)
    return gamma * (x - mu) / jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) + beta


def jax_stablemax_cross_entropy(z, y, reduction="mean", compute_in_float64=False):
    s = jnp.where(z >= 0, z + 1, 1 / (1 - jnp.minimum(z, 0)))
    log_p = jnp.log(s) - jnp.log(s.sum(-1, keepdims=True))
    per_row = -jnp.take_along_axis(log_p, y[:, None], axis=1)[:, 0]
    return {"mean": per_row.mean, "sum": per_row.sum}.get(reduction, lambda: per_row)()


def test_correct_jax_implementations_conform_in_float64_and_float32():
    for op, fn in [("layer_norm", jax_layer_norm), ("stablemax_cross_entropy", jax_stablemax_cross_entropy)]:
        report = check(op, fn, framework="jax")
        assert report.ok, [(f.sample, f.detail) for f in report.failures][:3]
        assert {r.dtype for r in report.results} == {"float64", "float32"}


def test_a_wrong_jax_gradient_is_caught():
    def softmax_habit(z, y, reduction="mean", compute_in_float64=False):  # subtracts the row max
        return jax_stablemax_cross_entropy(z - z.max(-1, keepdims=True), y, reduction, compute_in_float64)

    failures = check("stablemax_cross_entropy", softmax_habit, framework="jax").failures
    assert failures and "forward" in {f.check for f in failures}


def test_a_jax_layer_norm_with_eps_outside_the_square_root_is_caught():
    def eps_outside(x, gamma, beta, eps):
        mu = x.mean(-1, keepdims=True)
        return gamma * (x - mu) / (jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True)) + eps) + beta

    failures = check("layer_norm", eps_outside, framework="jax").failures
    assert failures and "forward" in {f.check for f in failures}
