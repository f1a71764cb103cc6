"""WiSE-FT / BANG: weight-space interpolation and output-space ensembles (Lin et al., BANG)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, RealScalar, StateDict, op

__all__ = ["PAPER", "output_space_ensemble", "wise_ft_interpolate"]

PAPER = Paper(
    "Spurious Feature Diversification Improves Out-of-distribution Generalization",
    arxiv="2309.17230",
    year=2023,
)


# -- weight-space ensemble (WiSE-FT) ------------------------------------------------------------
@op(
    inputs={"theta_pre": FloatArray("..."), "theta_ft": FloatArray("..."), "alpha": RealScalar(0, 1)},
    outputs=("theta",),
    state_dict=StateDict({"theta_pre": "tensor", "theta_ft": "tensor"}, outputs=("theta",)),
)
def wise_ft_interpolate(theta_pre, theta_ft, *, alpha=0.5):
    r"""WiSE-FT: the linear interpolation of a pre-trained and a fine-tuned model's weights.

    The fine-tuned model θ_ft and its pre-trained initialization θ_pre usually lie in one
    linearly connected low-loss region; the weight-space ensemble in between keeps most of
    the fine-tuned in-distribution accuracy and much of the pre-trained model's robustness
    under distribution shift, at the cost of one model. BANG is the same interpolation with
    a θ_ft fine-tuned with Mixup or label smoothing (less over-confident out of
    distribution); the op is the same.

    Forward, for one parameter tensor, elementwise in the dtype of the inputs::

        θ(α) = (1 − α)·θ_pre + α·θ_ft

    with the two coefficients ``1 − α`` and ``α`` computed in float64 and rounded once to the
    dtype. The endpoints are exact: α = 0 gives θ_pre, α = 1 gives θ_ft.

    Not differentiable (a merge rule with a fixed α; a learned mixture is ``learned_soup``).

    Whole models: ``wise_ft_interpolate(state_dict_pre, state_dict_ft, alpha=0.5)``
    interpolates every floating-point tensor of matching name; the two state dicts must
    have the same names and shapes (an ``InputError`` otherwise), and integer buffers are
    copied from ``theta_pre``.

    Args:
        theta_pre: the pre-trained (zero-shot) parameter θ_pre, any shape, float32/float64.
        theta_ft: the fine-tuned parameter θ_ft, same shape and dtype.
        alpha: the mixing coefficient α ∈ [0, 1]; default 0.5, WiSE-FT's fixed-α setting
            when no held-out data picks it (arXiv:2109.01903 reports α = 0.5 beside the
            optimal α), the typical value for WiSE-FT/BANG in arXiv:2309.17230.

    Returns:
        theta: the interpolated parameter, same shape and dtype as ``theta_pre``.

    Reference: Lin et al., *Spurious Feature Diversification Improves Out-of-distribution
    Generalization*, ICLR 2024, arXiv:2309.17230 (WiSE-FT and BANG); Wortsman et al.,
    *Robust fine-tuning of zero-shot models*, CVPR 2022, arXiv:2109.01903 (Eq. 1). No
    official code for [34].

    >>> import numpy as np, refimpl
    >>> refimpl.merging.wise_ft_interpolate(np.array([0.0, 2.0]), np.array([4.0, 0.0]), alpha=0.25)
    array([1. , 1.5])
    """
    dtype = theta_pre.dtype.type
    theta = dtype(1.0 - alpha) * theta_pre + dtype(alpha) * theta_ft
    return np.asarray(theta, dtype=theta_pre.dtype), None


# -- output-space ensemble ------------------------------------------------------------------------
def _check_ensemble(arguments) -> None:
    weights = arguments["weights"]
    if weights is None:
        return
    if bool((weights < 0).any()):
        raise ArgumentError("weights", "non-negative mixture weights w_k >= 0", f"min w = {weights.min()}")
    if not bool((weights > 0).any()):
        raise ArgumentError("weights", "at least one positive weight", "all weights are 0")


@op(
    inputs={"log_probs": FloatArray("...", "K"), "weights": FloatArray("K", optional=True)},
    outputs=("log_mean",),
    differentiable=("log_probs",),
    check=_check_ensemble,
)
def output_space_ensemble(log_probs, weights=None):
    r"""The output-space ensemble: the weighted mean of K models' predicted probabilities.

    Instead of averaging weights (``wise_ft_interpolate``), the ensemble averages the members'
    predictive distributions: ``p̄ = Σ_k w_k p_k`` (two models: ``w = (1 − α, α)``, the
    output-space counterpart of WiSE-FT; K models: ``w_k = 1/K``). It is also the teacher of
    ensemble distillation. Computed in log space, so that tiny probabilities neither
    underflow nor lose their digits.

    Forward, elementwise over every position (batch, class) with the members on the trailing
    axis, ``s_k = log p_k + log w_k``::

        m        = max_k s_k                                   (exp below cannot overflow)
        e_k      = exp(s_k − m)
        log p̄    = m + log Σ_k e_k                             (= logsumexp_k s_k)
        r_k      = e_k / Σ_j e_j  = w_k p_k / p̄                (the member's responsibility)

    A zero weight gives ``log w_k = −inf`` and ``r_k = 0``: that member is ignored. The
    weights are used as given (not renormalized): with Σ w = 1 and normalized members, p̄ is
    a distribution over the classes. The members are NOT checked to be normalized (the op is
    elementwise, so logits give the log of the weighted sum of their exponentials).

    Backward. ``∂ log p̄/∂ log p_k = w_k p_k/p̄ = r_k`` (the derivative of logsumexp is the
    softmax of its arguments, and ``∂s_k/∂ log p_k = 1``), so for a cotangent ḡ of log p̄::

        ḡ_{log p_k} = r_k · ḡ

    The r_k of one position sum to 1, so ``Σ_k ḡ_{log p_k} = ḡ``. The weights are fixed (not
    differentiated).

    Args:
        log_probs: the members' log-probabilities (``log_softmax`` of their logits) stacked on
            a trailing axis, shape ``(..., K)``, e.g. (batch, classes, K); float32/float64.
        weights: (K,) mixture weights w_k ≥ 0 (not all 0), same dtype; default None: the
            uniform ``w_k = 1/K`` of the K-model ensemble (arXiv:2309.17230).

    Returns:
        log_mean: ``log p̄``, shape ``log_probs.shape[:-1]``, dtype of ``log_probs``.

    Reference: Lin et al., arXiv:2309.17230 (the output-space ensemble of the pre-trained
    and fine-tuned models); no official code.

    >>> import numpy as np, refimpl
    >>> log_probs = np.log(np.array([[[0.2, 0.6], [0.8, 0.4]]]))      # (1 row, 2 classes, K = 2)
    >>> np.exp(refimpl.merging.output_space_ensemble(log_probs)).round(12)  # (0.2+0.6)/2, (0.8+0.4)/2
    array([[0.4, 0.6]])
    """
    count = log_probs.shape[-1]
    if weights is None:
        log_weights = np.full(count, -np.log(count), dtype=log_probs.dtype)  # w_k = 1/K
    else:
        with np.errstate(divide="ignore"):  # w_k = 0: log w_k = −inf, the member is ignored
            log_weights = np.log(weights)
    s = log_probs + log_weights
    m = s.max(axis=-1, keepdims=True)  # finite: at least one weight is positive
    e = np.exp(s - m)  # subtract the max: exp cannot overflow
    total = e.sum(axis=-1, keepdims=True)
    log_mean = (m + np.log(total))[..., 0]
    responsibilities = e / total
    return log_mean.astype(log_probs.dtype, copy=False), (responsibilities,)


@output_space_ensemble.defvjp
def output_space_ensemble_backward(residuals, g_log_mean):
    (responsibilities,) = residuals
    return (responsibilities * g_log_mean[..., None],)
