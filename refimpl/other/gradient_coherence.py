"""Coherence of per-example gradients (On the Generalization Mystery in Deep Learning,
Chatterjee and Zielinski)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, op

__all__ = ["PAPER", "gradient_coherence"]

PAPER = Paper("On the Generalization Mystery in Deep Learning", arxiv="2203.10036", year=2022)


def _check(arguments) -> None:
    g = arguments["g"]
    if g.shape[0] < 1:
        raise ArgumentError("g", "at least one per-example gradient (m >= 1)", "m = 0")
    if not bool((g != 0).any()):
        raise ArgumentError(
            "g", "at least one nonzero gradient (α divides by mean_i ‖g_i‖²)", "every gradient is 0"
        )


@op(inputs={"g": FloatArray("m", "P")}, outputs=("alpha", "alpha_perp"), check=_check)
def gradient_coherence(g):
    r"""Coherence α of m per-example gradients: how much they point the same way.

    Coherent Gradients explains generalization by the gradients of many examples adding up
    in a few shared directions: a step of gradient descent then helps many examples at once.
    Coherence measures this as the expected inner product of two gradients drawn
    independently (the same one twice included), normalized by the expected squared norm:
    1 for identical gradients, ``1/m`` for mutually orthogonal gradients of equal norm (the
    "orthogonal limit" ``α^⊥``, against which α is read: ``α/α^⊥ = m·α``), 0 when they cancel.

    Forward (float64 sums, the outputs rounded to g's dtype)::

        α   = E_{i,j}⟨g_i, g_j⟩ / E_i⟨g_i, g_i⟩
            = (1/m²)‖Σ_i g_i‖² / ((1/m) Σ_i ‖g_i‖²)  = ‖ḡ‖² / mean_i ‖g_i‖²  ∈ [0, 1]
        α^⊥ = 1/m

    The double sum ``Σ_{i,j}⟨g_i, g_j⟩ = ‖Σ_i g_i‖²`` is evaluated through the mean gradient
    (O(mP), not O(m²P)); α ≤ 1 by Jensen (Cauchy–Schwarz). α is defined only when some
    gradient is nonzero (the check refuses all-zero g). No gradient is defined: a
    measurement on per-example gradients (reference-only, a one-off statistic).

    Args:
        g: per-example gradients (m, P), one flattened gradient per row, float32 or float64.

    Returns:
        alpha: the coherence α, a 0-d array of g's dtype.
        alpha_perp: the orthogonal limit ``1/m`` (0-d, g's dtype).

    Reference: Chatterjee, Zielinski, *On the Generalization Mystery in Deep Learning*,
    arXiv:2203.10036, Section 4 (the coherence α and its orthogonal limit α^⊥ = 1/m).

    >>> import numpy as np, refimpl
    >>> alpha, alpha_perp = refimpl.other.gradient_coherence(np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> float(alpha), float(alpha_perp)   # ḡ = (½, ½): ‖ḡ‖² = ½, mean ‖g_i‖² = 1
    (0.5, 0.5)
    """
    m = g.shape[0]
    g64 = g.astype(np.float64)
    g_bar = g64.mean(axis=0)
    mean_squared_norm = (g64 * g64).sum(axis=1).mean()
    alpha = (g_bar @ g_bar) / mean_squared_norm
    return (np.asarray(alpha, dtype=g.dtype), np.asarray(1.0 / m, dtype=g.dtype)), None
