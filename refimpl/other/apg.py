"""Adaptive projected guidance, APG (Eliminating Oversaturation and Artifacts of High Guidance
Scales in Diffusion Models, Sadat et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    FloatArray,
    OneOf,
    Paper,
    RealScalar,
    known_deviation,
    op,
)

__all__ = ["PAPER", "adaptive_projected_guidance"]

PAPER = Paper(
    "Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion Models",
    arxiv="2410.02416",
    year=2024,
)

#: the guard of ``torch.nn.functional.normalize`` in the published projection: ‖D_c‖ is
#: replaced by max(‖D_c‖, 1e-12), so a zero prediction has no parallel component
NORMALIZE_EPS = 1e-12


def _check(arguments) -> None:
    pred_cond = arguments["pred_cond"]
    if pred_cond.ndim < 1:
        raise ArgumentError(
            "pred_cond",
            "an array (B, ...) whose first axis is the batch (norms are per sample)",
            "a 0-d array",
        )


def _per_sample(x: np.ndarray) -> np.ndarray:
    """The (B, ...) array as (B, n): one row per sample, over all its non-batch dimensions."""
    return x.reshape(x.shape[0], -1)


@op(
    inputs={
        "pred_cond": FloatArray("..."),
        "pred_uncond": FloatArray("..."),
        "running": FloatArray("...", optional=True),
        "guidance_scale": RealScalar(),
        "eta": RealScalar(),
        "norm_threshold": RealScalar(0),
        "momentum": RealScalar(),
        "formulation": OneOf("paper", "diffusers"),
    },
    outputs=("guided", "running"),
    check=_check,
)
def adaptive_projected_guidance(
    pred_cond,
    pred_uncond,
    running=None,
    *,
    guidance_scale,
    eta,
    norm_threshold,
    momentum,
    formulation="paper",
):
    r"""APG: classifier-free guidance with the update's component parallel to the conditional
    prediction down-weighted, its norm capped, and a (reverse) momentum on it.

    Classifier-free guidance moves the conditional prediction ``D_c`` by ``(w − 1)·Δ`` with
    ``Δ = D_c − D_u``. At high scales w this oversaturates. APG splits Δ into the part
    parallel to ``D_c`` (which, the paper shows, mostly raises saturation) and the
    orthogonal part (which improves detail), and keeps the parallel part only with a weight
    η (η = 0 drops it). It also caps ‖Δ‖ at a threshold r (seeing CFG as a gradient-ascent
    step with step size w − 1, this is gradient clipping) and replaces Δ by a running
    average with momentum β (negative β, "reverse momentum", pushes away from the previous
    steps' direction). The paper applies the rule to denoised (x0) predictions.

    Forward, per sample b (norms and inner products over all non-batch dimensions)::

        Δ   = D_c − D_u
        run' = Δ + β·run                          (run = 0 at a prompt's first step)
        Δ  ← run'
        Δ  ← Δ·min(1, r/‖Δ‖)                      (skipped when r = 0; factor 1 where ‖Δ‖ ≤ r)
        v̂   = D_c/max(‖D_c‖, 1e-12)                (float64)
        Δ_∥ = ⟨Δ, v̂⟩·v̂,   Δ_⊥ = Δ − Δ_∥            (float64, then rounded to the dtype)
        D   = D_c + (w − 1)·(Δ_⊥ + η·Δ_∥)          formulation="paper" (default)
        D   = D_u + w·(Δ_⊥ + η·Δ_∥)                formulation="diffusers"

    The state ``run'`` returned is the running average before the rescaling (the paper's
    Algorithm 1: the momentum buffer stores ``Δ + β·run``, the rescaled copy is used once).
    The rescaling factor is taken as 1 where ‖Δ‖ ≤ r, so a zero update (‖Δ‖ = 0) needs no
    division. The projection runs in float64, as in the published algorithm; the guard
    ``max(‖D_c‖, 1e-12)`` makes ``Δ_∥ = 0`` for a zero prediction.

    With η = 1, r = 0 and β = 0 the rule is classifier-free guidance exactly,
    ``D_c + (w − 1)(D_c − D_u)``. The diffusers guider computes ``D_u + w(Δ_⊥ + η Δ_∥) =
    D_c + (w − 1)Δ_⊥ + (wη − 1)Δ_∥``: equal to the paper only for η = 1 without rescaling
    or momentum; at η = 0 it keeps a ``−Δ_∥`` term (recorded as a known deviation). Its
    "original formulation" switch gives ``D_c + w(…)``, the paper's rule with w shifted by
    one (call this op with ``guidance_scale = w + 1``).

    Not pinned: the paper's per-model settings (its table of r and β per model; η = 0 is
    recommended in its appendix, and the Stable Diffusion XL row is reported as r = 15,
    β = −0.5 — neither checked first hand here). w, η, r and β are therefore required
    arguments, with no default. No gradient is defined (a sampling rule).

    Args:
        pred_cond: the conditional prediction ``D_c`` (B, ...), float32 or float64; the first
            axis is the batch (one norm per sample).
        pred_uncond: the unconditional prediction ``D_u``, same shape and dtype.
        running: the momentum state ``run`` from the previous step (same shape), or None at
            a prompt's first step (the same as zeros). Reset it for every new prompt.
        guidance_scale: w (required).
        eta: weight η of the parallel component (required; 1 keeps it as in CFG, 0 drops it).
        norm_threshold: r ≥ 0, the cap on ‖Δ‖ per sample (required; 0 disables it).
        momentum: β (required; negative for the paper's reverse momentum, 0 for none).
        formulation: "paper" (default) or "diffusers" (the diffusers guider's rule).

    Returns:
        guided: the guided prediction D, shape and dtype of ``pred_cond``.
        running: the new momentum state ``Δ + β·run``, to pass to the next step.

    Reference: Sadat, Hilliges, Weber, *Eliminating Oversaturation and Artifacts of High
    Guidance Scales in Diffusion Models*, ICLR 2025, arXiv:2410.02416 (Algorithm 1:
    ``MomentumBuffer``, ``project``, ``normalized_guidance``). The diffusers variant:
    huggingface/diffusers, ``src/diffusers/guiders/adaptive_projected_guidance.py``
    (``normalized_guidance``).

    >>> import numpy as np, refimpl
    >>> d_c, d_u = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])   # Δ = (1, −1): Δ_∥ = (1, 0)
    >>> guided, state = refimpl.other.adaptive_projected_guidance(
    ...     d_c, d_u, guidance_scale=3.0, eta=0.0, norm_threshold=0.0, momentum=0.0)
    >>> guided  # D_c + 2·Δ_⊥ = (1, 0) + 2·(0, −1); CFG would give (3, −2)
    array([[ 1., -2.]])
    """
    dtype = pred_cond.dtype.type
    shape = pred_cond.shape
    delta = pred_cond - pred_uncond
    new_running = delta if running is None else delta + dtype(momentum) * running
    update = _per_sample(new_running)
    if norm_threshold > 0:
        norm = np.sqrt((update.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
        # min(1, r/‖Δ‖) without dividing where ‖Δ‖ ≤ r (also ‖Δ‖ = 0): the factor is 1 there
        factor = np.where(norm > norm_threshold, norm_threshold / np.maximum(norm, norm_threshold), 1.0)
        update = update * factor.astype(pred_cond.dtype)
    # the projection in float64 (Algorithm 1's v0.double(), v1.double())
    v0 = update.astype(np.float64)
    v1 = _per_sample(pred_cond).astype(np.float64)
    v1_norm = np.sqrt((v1 * v1).sum(axis=1, keepdims=True))
    v1_hat = v1 / np.maximum(v1_norm, NORMALIZE_EPS)
    parallel64 = (v0 * v1_hat).sum(axis=1, keepdims=True) * v1_hat
    orthogonal64 = v0 - parallel64
    parallel = parallel64.astype(pred_cond.dtype)
    orthogonal = orthogonal64.astype(pred_cond.dtype)
    normalized_update = (orthogonal + dtype(eta) * parallel).reshape(shape)
    if formulation == "paper":
        guided = pred_cond + dtype(guidance_scale - 1) * normalized_update
    else:  # diffusers: from the unconditional prediction, scaled by w
        guided = pred_uncond + dtype(guidance_scale) * normalized_update
    return (guided, np.array(new_running, copy=True)), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    adaptive_projected_guidance,
    name="apg-diffusers-from-unconditional",
    source="huggingface/diffusers, src/diffusers/guiders/adaptive_projected_guidance.py, "
    "normalized_guidance (use_original_formulation=False, the default)",
    official="D = D_u + w·(Δ_⊥ + η·Δ_∥) = D_c + (w − 1)·Δ_⊥ + (wη − 1)·Δ_∥: at η = 0 a −Δ_∥ term "
    "remains, and with rescaling or momentum the part D_c − D_u − Δ is added back unscaled",
    paper="D = D_c + (w − 1)·(Δ_⊥ + η·Δ_∥) (Algorithm 1)",
    example=Example(
        args=(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])),
        kwargs={"guidance_scale": 3.0, "eta": 0.0, "norm_threshold": 0.0, "momentum": 0.0},
        official={"guided": [[0.0, -2.0]]},
        reference={"guided": [[1.0, -2.0]]},
    ),
    flag={"formulation": "diffusers"},
)
