"""The AR-Net sparsity regularizer on auto-regression weights (AR-Net: A simple Auto-Regressive
Neural Network for time-series)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "arnet_sparsity_regularizer"]

PAPER = Paper(
    "AR-Net: A simple Auto-Regressive Neural Network for time-series",
    arxiv="1911.12436",
    year=2019,
    code="ourownstory/AR-Net",
)


def sparsity_weight(sparsity):
    """λ = 0.02·(1/s − 1) for the expected density s ∈ (0, 1] (AR-Net/NeuralProphet
    ``get_regularization_lambda``); 0 at s = 1."""
    return 0.02 * (1.0 / sparsity - 1.0)


@op(
    inputs={
        "theta": FloatArray("..."),
        "c1": RealScalar(0, low_open=True),
        "c2": RealScalar(0, low_open=True),
        "eps": RealScalar(0),
        "sparsity": RealScalar(0, 1, low_open=True, optional=True),
    },
    outputs=("penalty",),
    differentiable=("theta",),
)
def arnet_sparsity_regularizer(theta, *, c1=3.0, c2=3.0, eps=1e-12, sparsity=None):
    r"""AR-Net's sparsity regularizer: the mean of a saturating, root-shaped penalty on |θ|.

    Each AR weight pays ``2σ(c1 |θ|^{1/c2}) − 1``: 0 at θ = 0, rising steeply (like |θ|^{1/c2},
    an ℓ_q with q = 1/3 < 1 near 0) and saturating at 1 for large weights, so small weights
    are pushed to 0 while large ones are barely shrunk. The weight λ on the task loss comes
    from the expected density s of the weights: ``loss = MSE + λR``, ``λ = 0.02(1/s − 1)``.

    Forward, over the p entries of θ (any shape; the mean is over all of them)::

        u_i = (ε + |θ_i|)^{1/c2}
        R   = (1/p) Σ_i [2/(1 + exp(−c1 u_i)) − 1] = (1/p) Σ_i tanh(c1 u_i/2)
        penalty = R,  or λ(s)·R when ``sparsity`` s is given

    evaluated as ``tanh(y/2) = −expm1(−y)/(1 + e^{−y})`` with ``y = c1 u ≥ 0``: no overflow, and
    the digits of small values are kept.

    Backward. ``d tanh(y/2)/dy = ½ sech²(y/2) = 2e/(1 + e)²`` with ``e = exp(−y)`` (the same as
    ``2σ(1 − σ)`` with σ = sigmoid(y)), and
    ``du/dθ_i = (1/c2)(ε + |θ_i|)^{1/c2 − 1} sign(θ_i) = sign(θ_i)·u_i/(c2(ε + |θ_i|))``.
    So, with ḡ the cotangent (times λ when s is given)::

        θ̄_i = ḡ (1/p) · c1 · 2e_i/(1 + e_i)² · u_i/(c2 (ε + |θ_i|)) · sign(θ_i)

    The derivative is unbounded near 0 for c2 > 1: with ε = 1e-12, c1 = c2 = 3 and p = 1 it is
    ≈ 5.0e7 for 0 < |θ| ≪ 1e-12, and exactly 0 at θ = 0 (sign(0) = 0, as PyTorch's abs backward;
    the code selects 0 there, so ε = 0 gives 0, not 0·∞).

    Args:
        theta: AR weights (any shape, at least one entry), float32 or float64.
        c1: steepness (default 3, AR-Net ``regularize``/NeuralProphet ``reg_func_ar``).
        c2: root order (default 3, same sources).
        eps: added to |θ| inside the root (default 1e-12, NeuralProphet ``reg_func_ar``; the
            original AR-Net training script has none: pass 0). NeuralProphet's earlier
            ``original`` variant used c1 = c2 = 2 with ε = 1e-9.
        sparsity: the expected density s ∈ (0, 1] of the weights; when given the output is
            ``λR`` with ``λ = 0.02(1/s − 1)`` (AR-Net ``intelligent_regularization``, NeuralProphet
            ``get_regularization_lambda``; the linear ramp of λ over the first epochs is the
            training loop's). Default None: R itself.

    Returns:
        penalty: a scalar in the dtype of ``theta``.

    Reference: Triebe, Laptev, Rajagopal, *AR-Net: A simple Auto-Regressive Neural Network for
    time-series*, arXiv:1911.12436; official code ourownstory/AR-Net (training utilities) and
    NeuralProphet ``neuralprophet/utils.py``, ``reg_func_ar`` and ``get_regularization_lambda``.

    >>> import numpy as np, refimpl
    >>> theta = np.array([0.0, 1e6])  # with ε = 0: tanh(0) = 0 and tanh(1.5·(1e6)^{1/3}) = 1
    >>> float(refimpl.regularizers.arnet_sparsity_regularizer(theta, eps=0.0))
    0.5
    """
    dtype = theta.dtype
    magnitude = np.abs(theta.astype(np.float64))
    shifted = eps + magnitude
    root = shifted ** (1.0 / c2)  # u = (ε + |θ|)^{1/c2}
    decay = np.exp(-c1 * root)  # e = exp(−c1 u) ∈ (0, 1]
    per_weight = -np.expm1(-c1 * root) / (1.0 + decay)  # tanh(c1 u/2)
    scale = 1.0 if sparsity is None else sparsity_weight(sparsity)
    penalty = scale * per_weight.mean()
    return np.asarray(penalty, dtype=dtype), (theta, root, decay, shifted, c1, c2, scale)


@arnet_sparsity_regularizer.defvjp
def arnet_sparsity_regularizer_backward(residuals, g_penalty):
    theta, root, decay, shifted, c1, c2, scale = residuals
    weight = float(g_penalty) * scale / theta.size
    slope = c1 * 2.0 * decay / (1.0 + decay) ** 2  # d tanh(c1 u/2)/du
    # du/dθ = sign(θ)·u/(c2(ε + |θ|)); 0 at θ = 0 (sign(0) = 0, also when ε = 0)
    nonzero = theta != 0
    root_slope = np.where(nonzero, root / (c2 * np.where(nonzero, shifted, 1.0)), 0.0)
    g_theta = weight * slope * root_slope * np.sign(theta)
    return (g_theta.astype(theta.dtype),)
