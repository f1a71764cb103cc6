"""Robust weight signatures: robustness extracted as a weight direction and patched back in
(Cai et al., RWS)."""

from __future__ import annotations

import numpy as np

from ..authoring import Example, Flag, FloatArray, Paper, StateDict, known_deviation, op

__all__ = ["PAPER", "robust_weight_signature", "rws_patch"]

PAPER = Paper(
    "Robust Weight Signatures: Gaining Robustness as Easy as Patching Weights?",
    arxiv="2302.12480",
    year=2023,
    code="VITA-Group/Robust_Weight_Signatures",
)


def _power_of_two_at_least(value: float) -> float:
    """The power of two 2^e with value < 2^e ≤ 2·value (value > 0): dividing by it is exact."""
    return float(np.ldexp(1.0, int(np.frexp(value)[1])))


# -- the signature ----------------------------------------------------------------------------
@op(
    inputs={
        "theta_robust": FloatArray("..."),
        "theta_clean": FloatArray("..."),
        "theta_pre": FloatArray("..."),
    },
    outputs=("signature",),
    state_dict=StateDict(
        {"theta_robust": "tensor", "theta_clean": "tensor", "theta_pre": "tensor"}, outputs=("signature",)
    ),
)
def robust_weight_signature(theta_robust, theta_clean, theta_pre):
    r"""The robust weight signature (RWS) of one parameter tensor: the part of a robust
    model's task vector orthogonal to the clean model's.

    A model fine-tuned from the same pretrained initialization θ_pre on a corruption c
    (θ_c, "robust") and on clean data (θ_clean) move in largely shared directions; what the
    robust model adds beyond the clean direction is a compact, transferable "signature" of
    robustness to c, which can be patched into θ_clean (``rws_patch``) and removed again.

    Forward, for one parameter tensor flattened to a vector (the official ``decompose`` /
    ``get_projection``), in float64::

        Δ   = θ_c − θ_pre                       the robust model's task vector
        a   = θ_clean − θ_pre                   the clean model's task vector
        RWS = Δ − (⟨Δ, a⟩/‖a‖²)·a               Δ with its component along a removed

    so ``⟨RWS, a⟩ = 0`` and RWS = Δ when Δ ⊥ a. Evaluated stably: Δ and a are first divided
    by powers of two ``2^p ≥ max|Δ|`` and ``2^q ≥ max|a|`` (exact), the two inner products
    are float64 sums of the scaled vectors (no overflow or underflow of ‖a‖²), and
    ``RWS = 2^p·(Δ̂ − (⟨Δ̂, â⟩/‖â‖²)·â)`` is rounded once to the dtype. If a = 0 (the clean
    model did not move this tensor) there is no direction to remove and RWS = Δ (the
    official code divides by ‖a‖² = 0 and returns NaN).

    The paper writes the signature as a projection P of the robust model's weights; the
    official code pins P as above (Δ taken from θ_pre, not ``θ_c − θ_clean``). Which tensors
    get a signature is the caller's choice (pass those tensors only): officially the shallow
    layers, ``select_layers`` with ``keep_num = 7`` (``--keep_num``): for VGG-16 the weights
    and biases of the first 7 conv layers in state-dict order; for ResNet-50 the stem and
    then whole bottleneck blocks, with every ``bn``/``downsample`` tensor replaced by the
    mean over the robust models instead (a pipeline step, not this op). The optional
    quantization of the stored signature is not part of this op.

    Not differentiable (a one-off extraction, computed once per model); the map is linear in Δ
    for fixed a.

    Whole models: ``robust_weight_signature(robust_sd, clean_sd, pretrained_sd)`` with state
    dicts restricted to the chosen tensors (same names and shapes; integer buffers copied
    from ``theta_robust``).

    Args:
        theta_robust: θ_c, the model fine-tuned on corruption c, any shape, float32/float64.
        theta_clean: θ_clean, the model fine-tuned on clean data, same shape and dtype.
        theta_pre: θ_pre, their common pretrained initialization, same shape and dtype.

    Returns:
        signature: RWS_c, same shape and dtype.

    Reference: Cai et al., *Robust Weight Signatures: Gaining Robustness as Easy as Patching
    Weights?*, ICML 2023, arXiv:2302.12480; official code VITA-Group/Robust_Weight_Signatures
    (``model_patching.py`` ``decompose``, ``tools.py`` ``get_projection`` and
    ``select_layers``).

    >>> import numpy as np, refimpl
    >>> pre = np.zeros(2)
    >>> refimpl.merging.robust_weight_signature(np.array([3.0, 4.0]), np.array([2.0, 0.0]), pre)
    array([0., 4.])
    """
    delta = theta_robust.astype(np.float64) - theta_pre  # Δ = θ_c − θ_pre
    clean = theta_clean.astype(np.float64) - theta_pre  # a = θ_clean − θ_pre
    delta_max, clean_max = float(np.abs(delta).max(initial=0.0)), float(np.abs(clean).max(initial=0.0))
    if clean_max == 0.0 or delta_max == 0.0:  # nothing to remove, or nothing to project
        return delta.astype(theta_robust.dtype), None
    delta_scale, clean_scale = _power_of_two_at_least(delta_max), _power_of_two_at_least(clean_max)
    delta_hat = (delta / delta_scale).reshape(-1)  # exact: divided by a power of two
    clean_hat = (clean / clean_scale).reshape(-1)
    coefficient = (delta_hat @ clean_hat) / (clean_hat @ clean_hat)  # ⟨Δ̂, â⟩/‖â‖²
    signature = delta_scale * (delta_hat - coefficient * clean_hat)
    return signature.reshape(theta_robust.shape).astype(theta_robust.dtype), None


# -- the patch ------------------------------------------------------------------------------
@op(
    inputs={
        "theta_clean": FloatArray("..."),
        "signatures": FloatArray("...", "C"),
        "alpha": FloatArray("C"),
        "official_squared_alpha": Flag(),
    },
    outputs=("theta",),
    differentiable=("alpha",),
    state_dict=StateDict(
        {"theta_clean": "tensor", "signatures": "models", "alpha": "per_tensor"}, outputs=("theta",)
    ),
)
def rws_patch(theta_clean, signatures, alpha, *, official_squared_alpha=False):
    r"""Patch a clean model with robust weight signatures: ``θ = θ_clean + Σ_c α_c RWS_c``.

    Robustness to several corruptions is added by adding their signatures
    (``robust_weight_signature``) with coefficients α_c; the patch is composable (patches
    add) and removable (subtracting the same sum restores θ_clean up to rounding).

    Forward, for one parameter tensor (signatures stacked on a trailing axis), with
    ``β_c = α_c`` (the paper) or ``β_c = α_c²`` (``official_squared_alpha``)::

        combination = Σ_c β_c RWS_c                  float64, c = 1, 2, …, C
        θ           = θ_clean + combination           float64, rounded once to the dtype

    (the official order: the sum of the scaled signatures, then added to the patched
    model). Official coefficients: ``α_c = alpha/C`` with ``--alpha`` 1 (``α_c = 1/C``), or
    ``--finetune_alpha`` given per signature.

    ``official_squared_alpha``: the official ``decompose`` multiplies each task vector by
    α_c BEFORE the (linear) projection and multiplies the projected vectors by α_c again
    when summing, so the applied coefficient is α_c² (the same as the paper's for a single
    signature at α = 1). A recorded known deviation; True reproduces it.

    Backward. θ is linear in β: ``∂θ/∂β_c = RWS_c``; for a cotangent θ̄::

        β̄_c = ⟨θ̄, RWS_c⟩_F
        ᾱ_c = β̄_c                   (paper)
        ᾱ_c = 2α_c·β̄_c              (official_squared_alpha: dβ_c/dα_c = 2α_c)

    θ_clean and the signatures are frozen (their cotangents θ̄ and β_c θ̄ are not returned).

    Whole models: ``rws_patch(clean_sd, [rws_sd_1, …, rws_sd_C], alpha)`` (the signatures'
    tensors, same names as ``clean_sd``: restrict it to the patched tensors), α shared by
    every tensor or a mapping of one (C,) α per tensor.

    Args:
        theta_clean: θ_clean, the model to patch, any shape, float32/float64.
        signatures: the C signatures stacked on the last axis, shape ``θ_clean.shape + (C,)``.
        alpha: (C,) patch coefficients, same dtype (officially 1/C each).
        official_squared_alpha: False (default, the paper): β = α; True: β = α² (the
            official code).

    Returns:
        theta: the patched parameter, shape and dtype of ``theta_clean``.

    Reference: Cai et al., arXiv:2302.12480 (model patching, θ = θ_clean + Σ α_c RWS_c);
    official code VITA-Group/Robust_Weight_Signatures, ``model_patching.py`` (``decompose``:
    ``weight[idx]`` applied before ``get_projection`` and again in
    ``torch.diag(weight).matmul(vectors)``; ``main``: ``weight = alpha/len(state_dicts)``).

    >>> import numpy as np, refimpl
    >>> signatures = np.stack([np.array([1.0, 0.0]), np.array([0.0, 2.0])], axis=-1)
    >>> refimpl.merging.rws_patch(np.array([1.0, 1.0]), signatures, np.array([0.5, 0.5]))
    array([1.5, 2. ])
    """
    beta = alpha * alpha if official_squared_alpha else alpha
    count = signatures.shape[-1]
    combination = np.zeros(theta_clean.shape, dtype=np.float64)
    for c in range(count):  # Σ_c β_c RWS_c, c = 1, 2, …
        combination = combination + np.float64(beta[c]) * signatures[..., c]
    theta = (theta_clean + combination).astype(theta_clean.dtype)
    return theta, (signatures, alpha, official_squared_alpha)


@rws_patch.defvjp
def rws_patch_backward(residuals, g_theta):
    signatures, alpha, official_squared_alpha = residuals
    count = signatures.shape[-1]
    g_beta = g_theta.reshape(-1).astype(np.float64) @ signatures.reshape(-1, count)  # ⟨θ̄, RWS_c⟩
    g_alpha = 2 * alpha * g_beta if official_squared_alpha else g_beta
    return (g_alpha.astype(alpha.dtype),)


known_deviation(
    rws_patch,
    name="rws-patch-squared-alpha",
    source="VITA-Group/Robust_Weight_Signatures, model_patching.py, decompose: "
    "`(state[key]-pretrained_weight[key]) * weight[idx]` before get_projection, then "
    "`torch.sum(torch.diag(weight).matmul(vectors), dim=0)`",
    official="scales each task vector by α_c before the linear projection and the projected signature "
    "by α_c again when summing: the applied coefficient is α_c² (α_c = alpha/C by default)",
    paper="θ = θ_clean + Σ_c α_c RWS_c",
    example=Example(
        args=(np.array([0.0]), np.array([[2.0, 2.0]]), np.array([0.5, 0.5])),
        official={"theta": [1.0]},
        reference={"theta": [2.0]},
        note="two signatures of 2, α_c = 1/2 (alpha = 1, C = 2): Σ α² RWS = 1, Σ α RWS = 2",
    ),
    flag={"official_squared_alpha": True},
)
