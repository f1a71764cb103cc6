"""R-AMT gradient dropout (Regularized Mask Tuning, Zheng et al.): keep the task gradient where
the distillation gradient agrees with it."""

from __future__ import annotations

import numpy as np

from ..adapters.ramt import PAPER
from ..authoring import ArgumentError, FloatArray, RealScalar, array_namespace, op

__all__ = ["PAPER", "gradient_dropout_combine"]

EPS = 1e-8  # official code: the guard in the agreement ratio's denominator


def _check(arguments) -> None:
    u = arguments["u"]
    xp = array_namespace(u)
    bad = (u < 0) | (u > 1)
    if bool(xp.any(bad)):
        index = tuple(int(i) for i in np.unravel_index(int(xp.argmax(bad.ravel())), u.shape))
        raise ArgumentError("u", "uniform draws in [0, 1]", f"u{list(index)} = {float(u[index])!r}")


@op(
    inputs={
        "g_a": FloatArray("..."),
        "g_b": FloatArray("..."),
        "u": FloatArray("..."),
        "lam": RealScalar(0, 1),
    },
    outputs=("g",),
    allow_empty=("...",),
    check=_check,
)
def gradient_dropout_combine(g_a, g_b, u, *, lam):
    r"""R-AMT gradient dropout: drop task-gradient elements the distillation gradient disagrees with.

    Regularized mask tuning trains binary masks with two losses: the task loss ``L_a`` and a
    knowledge-distillation loss ``L_b`` towards the frozen model. Instead of adding the two
    gradients, it keeps each element of the task gradient with a probability that measures
    how much the distillation gradient agrees with it in sign, and drops it (scaled by
    ``1 − λ``) otherwise. ``g_b`` only sets the keep probability; it is never added to the
    update.

    Forward, per element (``U`` an explicit uniform draw of the same shape)::

        P = (sign(g_a)·(g_a + g_b)/(|g_a| + |g_b| + 1e-8) + 1)/2        (keep probability)
        g = ((1 − λ) + λ·1[P > U])·g_a

    ``sign(g_a)·(g_a + g_b)/(|g_a| + |g_b|)`` lies in [−1, 1]: 1 where the signs agree (and
    where ``g_b = 0``), 0 where ``g_a = 0`` (``sign(0) = 0``, so ``P = ½``) or ``g_b = −g_a``,
    negative only where the signs disagree and ``|g_b| > |g_a|``. The 1e-8 keeps ``g_a = g_b
    = 0`` finite (``P = ½``). The comparison is strict: ``U = P`` drops. Arithmetic runs in the
    arrays' dtype, with the factor ``(1 − λ) + λ·keep`` formed as ``1`` or ``1 − λ``.

    Not differentiable: a gradient transform applied before the base optimizer (like
    ``gradient_noise``); its randomness ``U`` is an input.

    Args:
        g_a: gradient of the task loss, any shape, float32 or float64.
        g_b: gradient of the distillation loss, same shape and dtype.
        u: uniform draws in [0, 1], same shape and dtype.
        lam: dropout strength λ ∈ [0, 1] (λ = 0 returns ``g_a``; λ = 1 drops fully). The paper
            tunes it; no default is pinned.

    Returns:
        g: the combined gradient, same shape and dtype as ``g_a``.

    Reference: Zheng et al., *Regularized Mask Tuning: Uncovering Hidden Knowledge in
    Pre-trained Vision-Language Models*, arXiv:2307.15049 (gradient dropout). The project page
    wuw2019/R-AMT had no code; the formula and the 1e-8 guard are those of a released trainer
    with the method, as read for refimpl's optimizer catalog.

    >>> import numpy as np, refimpl
    >>> g_a, g_b = np.array([1.0, 1.0, -2.0, 0.0]), np.array([3.0, -3.0, 1.0, 5.0])
    >>> u = np.array([0.9, 0.5, 0.2, 0.5])  # P ≈ [1, 1/4, 2/3, 1/2]: keep, drop, keep, drop
    >>> refimpl.optim.gradient_dropout_combine(g_a, g_b, u, lam=0.5)
    array([ 1. ,  0.5, -2. ,  0. ])
    """
    dtype = g_a.dtype.type
    # agreement in [−1, 1]; the 1e-8 keeps g_a = g_b = 0 finite
    agreement = np.sign(g_a) * (g_a + g_b) / (np.abs(g_a) + np.abs(g_b) + dtype(EPS))
    keep_probability = (agreement + dtype(1)) / dtype(2)
    factor = np.where(keep_probability > u, dtype(1), dtype(1 - lam))
    return factor * g_a, None
