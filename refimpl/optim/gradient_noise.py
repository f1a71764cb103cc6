"""Annealed Gaussian gradient noise (Adding Gradient Noise Improves Learning for Very Deep Networks)."""

from __future__ import annotations

import math

from ..authoring import FloatArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = ["PAPER", "gradient_noise"]

PAPER = Paper(
    "Adding Gradient Noise Improves Learning for Very Deep Networks",
    arxiv="1511.06807",
    year=2015,
)


@op(
    inputs={
        "grads": FloatArray("..."),
        "noise": FloatArray("..."),
        "step": IntScalar(0),
        "eta": RealScalar(0, low_open=True),
        "step_base": OneOf(0, 1),
        "gamma": RealScalar(0),
    },
    outputs=("grads",),
    allow_empty=("...",),
)
def gradient_noise(grads, noise, *, step, eta, step_base, gamma=0.55):
    r"""Annealed Gaussian gradient noise: ``g̃ = g + σ_t·ξ`` with a variance that decays in t.

    Adding zero-mean Gaussian noise to every gradient helps very deep or badly initialized
    networks escape plateaus and saddle points early in training; the variance is
    annealed so that late training is (almost) plain SGD. The same noise rule applies to
    every parameter tensor; its draw ξ is an explicit input (standard normal, the shape of
    the gradient), so every backend computes the same ``g̃``.

    Forward::

        t     = step + step_base                 (the paper's step index)
        σ_t²  = η / (1 + t)^γ
        g̃     = g + σ_t·ξ,          ξ ~ N(0, I)  (given)

    ``σ_t`` is formed in double precision and rounded once to the arrays' dtype.

    The paper does not say whether its t counts from 0 or from 1, which changes σ at the
    first step (σ_0² = η against σ_1² = η/2^γ, 0.68·η for γ = 0.55): ``step`` is the
    0-based index of the update (0 for the first), and ``step_base`` (required, no
    default) the value the paper's t takes at the first update. η is tuned per task
    (the paper picks it from {0.01, 0.3, 1.0}): a required argument.

    Where the noise goes relative to gradient clipping is not fixed by the paper either.
    This op does not clip: its output is ``g + σ_t ξ`` whatever that order is, so there is
    no flag for it here. Clipping by a norm over all parameter tensors (the usual
    ``clip_grad_norm``) cannot be done on one tensor at a time anyway; the caller applies
    it before this op (clip, then add noise) or after it (add noise, then clip), as its
    recipe says.

    Not differentiable (a gradient transform: the output feeds an optimizer).

    Args:
        grads: gradient g of one parameter tensor, any shape, float32 or float64.
        noise: a standard-normal draw ξ, same shape and dtype.
        step: 0-based index of the current update (0 for the first).
        eta: η > 0, the noise scale at t = 0 (required; {0.01, 0.3, 1.0} in the paper).
        step_base: 0 or 1, the paper's t at the first update (required: not pinned).
        gamma: γ ≥ 0, the decay exponent (default 0.55, the paper's value).

    Returns:
        grads: ``g + σ_t ξ``, same shape and dtype as ``grads``.

    Reference: Neelakantan, Vilnis, Le, Sutskever, Kaiser, Kurach, Martens, *Adding Gradient
    Noise Improves Learning for Very Deep Networks*, arXiv:1511.06807; no
    official code.

    >>> import numpy as np, refimpl
    >>> g, xi = np.array([1.0, -2.0]), np.array([0.5, 1.0])
    >>> # t = 3 + 1 = 4, γ = 1/2, η = √5/4: σ² = η/√5 = 1/4, σ = 1/2
    >>> refimpl.optim.gradient_noise(g, xi, step=3, eta=5**0.5 / 4, step_base=1, gamma=0.5)
    array([ 1.25, -1.5 ])
    """
    t = step + step_base
    sigma = math.sqrt(eta / (1.0 + t) ** gamma)
    return grads + grads.dtype.type(sigma) * noise, None
