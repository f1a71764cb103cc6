"""IGNITE's dual step λ ← λ + η_λ(ρ‖∇G‖ − ε): sign at the boundary, clipping, official code."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl import InputError

update = refimpl.regularizers.ignite_dual_update


def test_ignite_dual_update_matches_the_official_defaults_by_hand():
    # ‖(6, 8)‖ = 10; 0.001 + 1e-3·(0.05·10 − 0.1) = 0.0014
    assert float(update(np.array([6.0, 8.0]), lam=0.001)) == pytest.approx(0.0014, rel=1e-14)


@pytest.mark.parametrize("nonnegative", [False, True])
def test_ignite_dual_update_sign_follows_the_constraint_at_rho_norm_equal_epsilon(nonnegative):
    g = np.array([1.5, 2.0])  # ‖g‖ = 2.5, ρ‖g‖ = 1.25 exactly
    kwargs = {"lam": 0.25, "rho": 0.5, "eta_lambda": 0.5, "nonnegative": nonnegative}
    at = float(update(g, epsilon=1.25, **kwargs))
    violated = float(update(g, epsilon=1.0, **kwargs))  # ρ‖g‖ > ε: λ grows
    slack = float(update(g, epsilon=1.5, **kwargs))  # ρ‖g‖ < ε: λ shrinks
    assert at == 0.25
    assert violated == pytest.approx(0.25 + 0.5 * 0.25, rel=1e-15)
    assert slack == pytest.approx(0.25 - 0.5 * 0.25, rel=1e-15)


def test_ignite_dual_update_official_lets_lambda_go_negative_and_the_flag_projects():
    g = np.array([0.0, 0.1])  # ρ‖g‖ = 0.005 < ε = 0.1
    official = float(update(g, lam=0.001, eta_lambda=0.1))
    projected = float(update(g, lam=0.001, eta_lambda=0.1, nonnegative=True))
    assert official == pytest.approx(0.001 + 0.1 * (0.005 - 0.1), rel=1e-14)
    assert official < 0
    assert projected == 0.0
    # above zero the projection changes nothing
    assert float(update(g, lam=1.0, eta_lambda=0.1, nonnegative=True)) == pytest.approx(1.0 - 0.1 * 0.095)


def _official_train_loop_lambdas(gradients, lambda_, eta_lambda_, epsilon, rho):
    """Transcription of cuong-dm/IGNITE ``MaximumLikelihood.train`` / ``train_step``
    (design_baselines/gradient_ascent_IGNITE/trainers.py): per minibatch the global norm of
    the per-tensor gradients of G, then ``new_lambda = lambda_ + eta_lambda_*(rho*norm -
    epsilon)``, carried to the next minibatch."""
    history = []
    for tensors in gradients:
        norm = np.sqrt(sum(float(np.sum(t * t)) for t in tensors))  # tf.linalg.global_norm
        lambda_ = lambda_ + eta_lambda_ * (rho * norm - epsilon)
        history.append(lambda_)
    return history


def test_ignite_dual_update_reproduces_the_official_lambda_trajectory():
    rng = np.random.default_rng(4)
    # per minibatch, the gradient of G over a two-layer model: a (3, 4) kernel and a (4,) bias
    gradients = [(rng.standard_normal((3, 4)) * s, rng.standard_normal(4) * s) for s in (0.1, 1.0, 5.0, 0.3)]
    expected = _official_train_loop_lambdas(gradients, 0.001, 1e-3, 0.1, 0.05)
    lam = 0.001
    for tensors, want in zip(gradients, expected, strict=True):
        flat = np.concatenate([t.reshape(-1) for t in tensors])
        lam = float(update(flat, lam=lam))
        assert lam == pytest.approx(want, rel=1e-13)
    # the trajectory moves both ways: small gradients lower λ, the large one raises it
    assert expected[0] < 0.001 < expected[2]


def test_ignite_dual_update_keeps_the_dtype_and_refuses_a_zero_step_size():
    g32 = np.array([3.0, 4.0], dtype=np.float32)
    assert update(g32, lam=0.5).dtype == np.float32
    with pytest.raises(InputError, match="eta_lambda"):
        update(g32, lam=0.5, eta_lambda=0.0)
