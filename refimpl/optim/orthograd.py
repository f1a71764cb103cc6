"""⊥Grad, the gradient minus its projection on the weights (Grokking at the Edge of Numerical Stability)."""

from __future__ import annotations

import numpy as np

from ..authoring import Example, Flag, FloatArray, Paper, known_deviation, op

__all__ = ["PAPER", "orthograd_step"]

PAPER = Paper(
    "Grokking at the Edge of Numerical Stability",
    arxiv="2501.04697",
    year=2025,
    code="LucasPrietoAl/grokking-at-the-edge-of-numerical-stability",
)

#: the official code's guard, added to ⟨w, w⟩ and to ‖g_⊥‖ (``orthograd.py``)
EPS = 1e-30


@op(
    inputs={
        "params": FloatArray("..."),
        "grads": FloatArray("..."),
        "rescale": Flag(),
    },
    outputs=("grads",),
    allow_empty=("...",),
)
def orthograd_step(params, grads, *, rescale=False):
    r"""⊥Grad: the gradient of one parameter tensor, minus its projection on the weights.

    Past memorization, the gradient of a softmax cross-entropy mostly points along the
    weights themselves: the cheapest way to lower the loss is to scale the logits up
    ("naïve loss minimization"), which drives the model towards softmax collapse. ⊥Grad
    removes that direction before the base optimizer (SGD, AdamW) sees the gradient, so
    every step must change *what* the weights compute, not only their scale. The tensor is
    treated as one flat vector ``w`` (its gradient ``g`` likewise).

    Forward (the official code's guards, ε = 1e-30)::

        c    = ⟨w, g⟩ / (⟨w, w⟩ + ε)              (projection coefficient; w = 0 gives c = 0)
        g_⊥  = g − c·w                           (rescale=False, the paper's rule)
        g̃    = g_⊥ · ‖g‖ / (‖g_⊥‖ + ε)           (rescale=True, the official wrapper)

    ``rescale=True`` gives the projected gradient the original gradient's norm, as the
    official ``OrthoGrad`` wrapper does (recorded as a known deviation: the paper's
    equation has no rescaling). Where ``‖g_⊥‖ = 0`` exactly (g parallel to w, or g = 0)
    the result is 0 on both paths: the guard would otherwise multiply 0 by
    ``‖g‖/ε``, which overflows to inf in float32 (0·inf = NaN). When g is only *nearly*
    parallel to w, g_⊥ is rounding noise and ``rescale=True`` inflates it to norm ‖g‖ in
    an arbitrary direction: a property of the rule, not of this evaluation.

    The three sums are evaluated in the arrays' dtype (``np.vdot``: BLAS, blocked
    accumulation); the coefficients ``c`` and ``‖g‖/(‖g_⊥‖ + ε)`` are Python floats
    rounded once to the dtype before they multiply the arrays.

    Not differentiable (an update rule: the output feeds an optimizer).

    Args:
        params: weights w of one parameter tensor, any shape, float32 or float64.
        grads: gradient g, same shape and dtype.
        rescale: False (default, the paper): return g_⊥; True (the official wrapper):
            return g_⊥ rescaled to the norm of g.

    Returns:
        grads: g_⊥ (or g̃), same shape and dtype as ``grads``. ``⟨w, g_⊥⟩ = 0`` up to
        rounding; projecting it again changes nothing.

    Reference: Prieto, Barsbey, Mediano, Birdal, *Grokking at the Edge of Numerical
    Stability*, arXiv:2501.04697 (⊥Grad); official code
    LucasPrietoAl/grokking-at-the-edge-of-numerical-stability, ``orthograd.py``
    (``OrthoGrad._orthogonalize_gradients``).

    >>> import numpy as np, refimpl
    >>> w, g = np.array([1.0, 0.0]), np.array([3.0, 4.0])
    >>> refimpl.optim.orthograd_step(w, g)  # the component along w (3) is removed
    array([0., 4.])
    >>> refimpl.optim.orthograd_step(w, g, rescale=True)  # ... and the norm ‖g‖ = 5 restored
    array([0., 5.])
    """
    dtype = grads.dtype.type
    w = params.reshape(-1)
    g = grads.reshape(-1)
    # the three inner products in float64: in float32, ⟨w, w⟩ overflows for |w| ~ 1e20 and
    # ‖g_⊥‖² underflows for |g| ~ 1e-20, where the result itself is representable
    w64, g64 = w.astype(np.float64), g.astype(np.float64)
    coefficient = float(np.vdot(w64, g64)) / (float(np.vdot(w64, w64)) + EPS)
    g_perp = g - dtype(coefficient) * w
    perp64 = g_perp.astype(np.float64)
    norm_perp = float(np.sqrt(np.vdot(perp64, perp64)))
    if norm_perp == 0.0:  # g ∥ w exactly (or g = 0): nothing is left, on both paths
        return np.zeros_like(grads), None
    if rescale:
        norm_g = float(np.sqrt(np.vdot(g64, g64)))
        g_perp = g_perp * dtype(norm_g / (norm_perp + EPS))
    return g_perp.reshape(grads.shape), None


known_deviation(
    orthograd_step,
    name="orthograd-rescale-to-gradient-norm",
    source="LucasPrietoAl/grokking-at-the-edge-of-numerical-stability, orthograd.py "
    "(OrthoGrad._orthogonalize_gradients)",
    official="rescales the projected gradient to the original gradient's norm, "
    "g_⊥·‖g‖/(‖g_⊥‖ + 1e-30), before the base optimizer steps",
    paper="the base optimizer steps with g_⊥ = g − (⟨w, g⟩/⟨w, w⟩)·w, without rescaling",
    example=Example(
        args=(np.array([1.0, 0.0]), np.array([3.0, 4.0])),
        official={"grads": [0.0, 5.0]},
        reference={"grads": [0.0, 4.0]},
    ),
    flag={"rescale": True},
)
