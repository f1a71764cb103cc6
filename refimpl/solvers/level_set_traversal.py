"""One step of Level Set Traversal (Exploring Geometry of Blind Spots in Vision Models,
Balasubramanian et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Flag, FloatArray, Function, InputError, Paper, RealScalar, op

__all__ = ["PAPER", "level_set_traversal_step"]

PAPER = Paper(
    "Exploring Geometry of Blind Spots in Vision Models",
    arxiv="2310.19889",
    year=2023,
    code="SriramB-98/blindspots-neurips-sub",
)


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _check(arguments) -> None:
    g = _host(arguments["g"])
    zero = ~np.any(g != 0, axis=1)
    if zero.any():
        raise ArgumentError(
            "g",
            "a nonzero gradient for every image (the projection divides by ⟨g, g⟩)",
            f"g = 0 for image {int(np.argmax(zero))}",
        )


def _confidence(oracle, candidate):
    """The oracle's source-class confidence of each candidate, checked."""
    p = oracle(candidate)
    p = np.asanyarray(p.get() if hasattr(p, "get") else p)
    batch = candidate.shape[0]
    if p.shape != (batch,) or p.dtype.kind not in "fiu" or not np.all(np.isfinite(p)):
        raise InputError(
            f"level_set_traversal_step: argument 'confidence': expected a callable returning finite real "
            f"source-class confidences of shape ({batch},), got {p.dtype} of shape {p.shape}"
        )
    return p.astype(candidate.dtype, copy=False)


@op(
    inputs={
        "x": FloatArray("B", "D"),
        "g": FloatArray("B", "D"),
        "x_target": FloatArray("B", "D"),
        "p0": FloatArray("B"),
        "correction": FloatArray("B", "D"),
        "confidence": Function(),
        "eta": RealScalar(0, low_open=True),
        "delta": RealScalar(0, low_open=True),
        "kappa": RealScalar(0),
        "adv_pert": Flag(),
    },
    outputs=("x_new", "correction_new", "accepted"),
    check=_check,
)
def level_set_traversal_step(
    x, g, x_target, p0, correction, confidence, *, eta=5e-2, delta=0.05, kappa=1 / 255, adv_pert=False
):
    r"""Level Set Traversal: step towards a target image inside the source class's level set.

    LST walks from a source image towards a very different target image while keeping the
    model's confidence in the source class almost constant: each step moves along the part of
    the direction to the target that is orthogonal to the gradient of the source class's loss
    (to first order, the confidence does not change), optionally corrected by a small
    accumulated step back up the confidence, and is kept only if the confidence has not dropped
    by δ or more. The endpoint is an image close to the target that the model still assigns
    to the source class with the starting confidence: a blind spot.

    Step, per image (flattened to D = C·H·W)::

        Δ    = x_t − x
        Δ_⊥  = Δ − (⟨Δ, g⟩/⟨g, g⟩) g                        (g = ∇_x CE(logits(x), y_src))
        a'   = clip(a + (κ/2) g, −κ, κ)   if adv_pert,  else a   (elementwise; carried across steps)
        x'   = clip_[0,1](x + η Δ_⊥ − a')  if adv_pert,  else clip_[0,1](x + η Δ_⊥)
        p'   = confidence(x')                                (oracle: p_src at the candidates)
        accept ⇔ p₀ − p' < δ;   x_new = x' if accepted else x

    ``⟨Δ_⊥, g⟩ = 0`` exactly in exact arithmetic; the projection is computed with ``ĝ = g/max|g|``
    (the same projector; ``⟨g, g⟩`` itself overflows in float32 for |g| ~ 1e20). The correction
    ``a`` is updated on every step whether or not the candidate is accepted (it accumulates
    across iterations, as the official loop does). Start (done outside, randomness explicit):
    ``x₀ = clip_[0,1](x_src + (4/255)(u − ½))``, u ~ U[0, 1) elementwise; only images the model
    assigns to the source class are traversed; the official CLI runs 100 steps.

    Reference-only: one step of a traversal (a projection and a clip per image); not
    differentiable (the acceptance is a selection).

    Args:
        x: current images (B, D), flattened, float32 or float64 (pixels in [0, 1]).
        g: ``∇_x CE(logits(x), y_src)`` (B, D), the per-image gradient of the source-class
            cross-entropy (oracle output; the official code differentiates the batch sum). Nonzero.
        x_target: target images (B, D).
        p0: source-class confidence of each image at the start of the traversal (B,).
        correction: the accumulated correction a (B, D) (zeros at the start).
        confidence: ``confidence(candidates) -> (B,)`` the source-class probability of each
            candidate image (an oracle: the model's softmax at the source class).
        eta: step η > 0 (official CLI default 5e−2).
        delta: the confidence drop δ > 0 tolerated (official ``pthresh`` default 0.05).
        kappa: correction size κ >= 0 (official default 1/255).
        adv_pert: apply the correction (official flag ``adv_pert``, default off).

    Returns:
        x_new: images after the step (B, D). correction_new: a' (B, D) (a unchanged without
        ``adv_pert``). accepted: which candidates were kept (B,), bool.

    Reference: Balasubramanian, Sriramanan, Sadasivan, Feizi, *Exploring Geometry
    of Blind Spots in Vision Models*, NeurIPS 2023, arXiv:2310.19889, Algorithm 1; official code
    SriramB-98/blindspots-neurips-sub, ``level_set_traversal.py`` (``batch_level_set_traversal``,
    ``get_nullspace_projection``; CLI defaults η = 5e−2, ``pthresh`` = 0.05, 100 iterations).

    >>> import numpy as np, refimpl
    >>> x, g, target = np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]]), np.array([[0.9, 0.1]])
    >>> x_new, a, accepted = refimpl.solvers.level_set_traversal_step(
    ...     x, g, target, np.array([0.9]), np.zeros((1, 2)), lambda c: np.array([0.88]), eta=0.5)
    >>> x_new, bool(accepted[0])              # Δ = (0.4, −0.4), Δ_⊥ = (0, −0.4): x + 0.5 Δ_⊥
    (array([[0.5, 0.3]]), True)
    """
    dtype = x.dtype.type
    direction = x_target - x
    # Δ_⊥ = Δ − (⟨Δ, ĝ⟩/⟨ĝ, ĝ⟩) ĝ with ĝ = g/max|g| (the projection is invariant to the scale of g,
    # and ⟨g, g⟩ itself over- or underflows for |g| beyond ~1e±19 in float32)
    g_hat = g / np.abs(g).max(axis=1, keepdims=True)
    coefficient = np.einsum("bd,bd->b", direction, g_hat) / np.einsum("bd,bd->b", g_hat, g_hat)
    orthogonal = direction - coefficient[:, None] * g_hat
    if adv_pert:
        correction_new = np.clip(correction + dtype(kappa / 2) * g, -dtype(kappa), dtype(kappa))
        candidate = np.clip(x + dtype(eta) * orthogonal - correction_new, 0, 1)
    else:
        correction_new = correction.copy()
        candidate = np.clip(x + dtype(eta) * orthogonal, 0, 1)
    p_candidate = _confidence(confidence, candidate)
    accepted = (p0 - p_candidate) < delta
    x_new = np.where(accepted[:, None], candidate, x)
    return (x_new, correction_new, accepted), None
