"""Lion, EvoLved Sign Momentum (Symbolic Discovery of Optimization Algorithms, Chen et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["lion_init", "lion_step"]

PAPER = Paper(
    "Symbolic Discovery of Optimization Algorithms",
    arxiv="2302.06675",
    year=2023,
    code="google/automl (lion)",
)


@op(
    inputs={"params": FloatArray("...")},
    outputs=("momentum",),
    allow_empty=("...",),
)
def lion_init(params):
    r"""Lion's state for one parameter tensor: the momentum buffer, all zeros.

    Args:
        params: parameters θ, any shape, float32 or float64.

    Returns:
        momentum: ``m = 0``, same shape and dtype as ``params`` (the official code's
        ``torch.zeros_like(p)``).

    Reference: Chen et al., *Symbolic Discovery of Optimization Algorithms*, arXiv:2302.06675.

    >>> import numpy as np, refimpl
    >>> refimpl.optim.lion_init(np.array([1.5, -2.0]))
    array([0., 0.])
    """
    return np.zeros_like(params), None


@op(
    inputs={
        "params": FloatArray("..."),
        "grads": FloatArray("..."),
        "momentum": FloatArray("..."),
        "lr": RealScalar(0),
        "beta1": RealScalar(0, 1, high_open=True),
        "beta2": RealScalar(0, 1, high_open=True),
        "weight_decay": RealScalar(0),
    },
    outputs=("params", "momentum"),
    allow_empty=("...",),
)
def lion_step(params, grads, momentum, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0):
    r"""One Lion step: move every coordinate by exactly ±η, the sign of an interpolated momentum.

    Lion keeps one buffer (an exponential moving average of gradients, like heavy-ball
    momentum) and updates each parameter by the *sign* of an interpolation between that
    buffer and the current gradient. Every coordinate moves by the same amount η, so the
    update has a fixed norm; the paper therefore uses a learning rate 3–10× smaller and a
    weight decay 3–10× larger than for AdamW. Two β's: β1 mixes the current gradient into
    the step direction, β2 (slower) tracks the gradient history.

    Update, elementwise, in exactly the official code's order::

        c  = β1·m + (1 − β1)·g              (the step direction, before the sign)
        θ ← θ·(1 − η·λ)                     (decoupled weight decay, on the old θ)
        θ ← θ − η·sign(c)
        m ← β2·m + (1 − β2)·g               (no bias correction: m starts at 0, stays biased)

    Algebraically ``θ' = θ − η·(sign(c) + λθ)``; the two-step order is what the official
    code computes, and in floating point it rounds differently, so it is kept for bit-exact
    agreement. ``sign(0) = 0`` (as in NumPy, PyTorch and JAX): a coordinate with ``c = 0``
    only decays. Nothing is differentiable; this is a procedure on explicit state
    (``lion_init`` gives ``m = 0``), returning new arrays.

    The scalar coefficients ``1 − β1``, ``1 − β2`` and ``1 − η·λ`` are formed in double
    precision and then rounded once to the arrays' dtype, which is what PyTorch does with
    the Python floats of the official code; every product and sum is then rounded
    separately (no fused multiply-add, see the note).

    Note on PyTorch. The official ``exp_avg.mul_(β2).add_(grad, alpha=1 − β2)`` runs on
    PyTorch's vectorized CPU path as a fused multiply-add ``fma(1 − β2, g, β2·m)`` (and CUDA
    builds contract ``a + α·b`` the same way by default): the momentum it returns differs
    from the two-rounding formula above by one ulp on a few percent of coordinates
    (measured: 1.8 % for Gaussian m and g, float64 and float32 alike). θ agrees bit for bit
    (``η·sign(c)`` is exact, so fusing it changes nothing) unless a later ``c`` lands within
    an ulp of 0. This reference follows the paper's formula and pseudo-code and
    the official optax version (``(1 − b2)·g + b2·m``), all of which round each product and sum.

    Args:
        params: parameters θ, any shape, float32 or float64.
        grads: gradient g, same shape and dtype.
        momentum: momentum m (from ``lion_init`` or the previous step), same shape and dtype.
        lr: learning rate η ≥ 0 (official default 1e-4).
        beta1: interpolation factor of the step direction, 0 ≤ β1 < 1 (default 0.9).
        beta2: decay of the momentum average, 0 ≤ β2 < 1 (default 0.99). The domain is the
            official code's check ``0.0 <= beta < 1.0``.
        weight_decay: decoupled weight decay λ ≥ 0, multiplied by η (default 0).

    Returns:
        params: the updated parameters θ'.
        momentum: the updated momentum m'. Both in the dtype of the inputs.

    Reference: Chen et al., *Symbolic Discovery of Optimization Algorithms*, arXiv:2302.06675
    (Program 1 and Algorithm 2); official code google/automl, ``lion/lion_pytorch.py``.

    >>> import numpy as np, refimpl
    >>> theta, g = np.array([1.0, -2.0, 0.5]), np.array([0.3, -4.0, 0.0])
    >>> new_theta, m = refimpl.optim.lion_step(theta, g, np.zeros(3), lr=0.1)
    >>> new_theta  # the first step from m = 0 is −η·sign(g); sign(0) = 0
    array([ 0.9, -1.9,  0.5])
    >>> m.round(6)
    array([ 0.003, -0.04 ,  0.   ])
    """
    dtype = params.dtype.type  # coefficients are rounded once to the arrays' dtype
    c = dtype(beta1) * momentum + dtype(1 - beta1) * grads
    new_params = params * dtype(1 - lr * weight_decay)
    new_params = new_params - dtype(lr) * np.sign(c)
    new_momentum = dtype(beta2) * momentum + dtype(1 - beta2) * grads
    return (new_params, new_momentum), None
