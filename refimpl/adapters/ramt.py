"""R-AMT: regularized mask tuning of frozen weights, its binary weight mask and its distillation
loss (Regularized Mask Tuning: Uncovering Hidden Knowledge in Pre-trained Vision-Language
Models, Zheng et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import Flag, FloatArray, Paper, RealScalar, log_softmax, op, softmax, softmax_backward

__all__ = ["PAPER", "mask_tuning_weight", "ramt_distillation_loss"]

PAPER = Paper(
    "Regularized Mask Tuning: Uncovering Hidden Knowledge in Pre-trained Vision-Language Models",
    arxiv="2307.15049",
    year=2023,
)


# -- the masked weight -------------------------------------------------------------------------
@op(
    inputs={"W": FloatArray("..."), "m_real": FloatArray("..."), "threshold": RealScalar()},
    outputs=("w_eff",),
    differentiable=("m_real",),
    custom_vjp="straight-through estimator: the mask scores receive ∂L/∂M = ∂L/∂W_eff ⊙ W, the "
    "gradient of the binary mask, not the derivative (0 almost everywhere) of the step 1[m_real > τ]",
)
def mask_tuning_weight(W, m_real, *, threshold):  # noqa: N803 - the paper's W
    r"""R-AMT's masked weight: a frozen weight times a learned binary mask, ``W ⊙ 1[m_real > τ]``.

    Mask tuning keeps the pretrained weights frozen and learns which of them to keep: each
    weight gets a real-valued score, the forward uses the weight only where its score is
    above a threshold, and the scores are trained through a straight-through estimator. The
    paper's point is that the knowledge a downstream task needs is already in the weights
    and only has to be uncovered by switching some of them off.

    Forward, elementwise (a selection: the kept weights are copied exactly)::

        M     = 1[m_real > τ]            (m_real = τ → 0: the Binarizer's ``le → 0``, ``gt → 1``)
        W_eff = W ⊙ M                    = where(m_real > τ, W, 0)

    the same rule in training and evaluation.

    Backward (custom: a straight-through estimator). The step ``1[m_real > τ]`` has
    derivative 0 almost everywhere, so the true VJP is 0. The Binarizer passes the
    gradient of the binary mask straight to the scores instead: with ``G = ∂L/∂W_eff`` and
    ``W_eff = W ⊙ M``, ``∂L/∂M = G ⊙ W``, and the identity backward of the Binarizer gives::

        m̄_real := ∂L/∂M = G ⊙ W

    W is frozen (no cotangent). Scores below τ still receive gradient, so masked weights
    can come back.

    Threshold: τ is a required argument. The paper tunes it per experiment and the run
    configurations (``cfg.MASK.THRESHOLD``, with ``MASK.INIT`` and ``MASK.SCALE``) were not
    located (so τ is not pinned); the released layer's defaults are ``mask_init="1s"``,
    ``mask_scale = 1e−2`` (scores initialized to 1e−2) and the ViT builder's τ = 5e−3, so
    that every weight is kept at initialization. The initialization is outside this op.

    Args:
        W: the frozen weight (any shape, e.g. (out, in)), float32/float64.
        m_real: the real-valued mask scores, same shape and dtype.
        threshold: τ, the score above which a weight is kept (required).

    Returns:
        w_eff: the masked weight, shape and dtype of ``W``.

    Reference: Zheng et al., *Regularized Mask Tuning: Uncovering Hidden Knowledge in
    Pre-trained Vision-Language Models*, ICCV 2023, arXiv:2307.15049, §3 (binary mask with a
    straight-through estimator); official project wuw2019/R-AMT ("code coming soon"); the
    released trainer's mask-layer module (``Binarizer``: ``outputs[inputs.le(τ)] = 0``,
    ``outputs[inputs.gt(τ)] = 1``, backward the identity).

    >>> import numpy as np, refimpl
    >>> W = np.array([[2.0, -1.0, 3.0]])
    >>> m_real = np.array([[0.01, 0.005, 0.0]])
    >>> refimpl.adapters.mask_tuning_weight(W, m_real, threshold=5e-3)   # 0.005 = τ is dropped
    array([[2., 0., 0.]])
    """
    keep = m_real > threshold  # m_real = τ → 0
    return np.where(keep, W, W.dtype.type(0)), (W,)


@mask_tuning_weight.defvjp
def mask_tuning_weight_backward(residuals, g_w_eff):
    (W,) = residuals
    return ((g_w_eff * W).astype(W.dtype, copy=False),)  # m̄_real := G ⊙ W (straight through)


# -- the distillation loss ---------------------------------------------------------------------
@op(
    inputs={
        "z_stu": FloatArray("B", "K"),
        "z_tea": FloatArray("B", "K"),
        "alpha": RealScalar(0, 1),
        "temperature": RealScalar(0, low_open=True),
        "detach_target": Flag(),
    },
    outputs=("loss",),
    differentiable=("z_stu",),
    custom_vjp="detach_target=True treats the mixed target as a constant (the usual distillation "
    "gradient), not the derivative of the forward, in which the target depends on z_stu; with the "
    "default detach_target=False the backward is the true derivative",
)
def ramt_distillation_loss(z_stu, z_tea, *, alpha, temperature, detach_target=False):
    r"""R-AMT's distillation loss: the student's tempered cross-entropy against a target mixed
    from the zero-shot teacher's and the student's own logits.

    The masked model (student) is kept close to zero-shot CLIP (teacher) so that tuning the
    mask does not forget what CLIP knew: the target distribution mixes the teacher's logits
    with the student's, and the student's tempered log-probabilities are scored against it.

    Forward, per sample i (T the temperature, α the teacher's share)::

        u = z_stu/T,  ℓ = −log softmax(u)                       (log-sum-exp, max subtracted)
        t = softmax((α z_tea + (1 − α) z_stu)/T)                 (the mixed target)
        L = T² · (1/B) Σ_i Σ_k t_ik ℓ_ik

    The mixed target is NOT detached (the trainer's ``KLLoss`` builds it from the live
    student logits), so the student's logits enter twice.

    Backward, per sample, with ``q = softmax(u)`` and a cotangent L̄. Through ℓ (t fixed):
    ``∂(Σ_k t_k ℓ_k)/∂u = q Σ_k t_k − t = q − t`` and ``∂u/∂z_stu = 1/T``. Through t (ℓ
    fixed): ``∂(Σ_k t_k ℓ_k)/∂t = ℓ``, softmax's VJP ``t ⊙ (ℓ − ⟨t, ℓ⟩)``, and the mixed
    logits' ``∂/∂z_stu = (1 − α)/T``. With the factor T²/B::

        z̄_stu = L̄ · (T/B) · [(q − t) + (1 − α) · t ⊙ (ℓ − ⟨t, ℓ⟩)]

    ``detach_target=True`` treats t as a constant (the second term dropped), the usual
    knowledge-distillation gradient. The teacher is frozen (no cotangent). At α = 1 the
    target is the teacher alone and both forms agree.

    α and T are required arguments: the released trainer fixes the formula, not the values
    of the paper's runs.

    Args:
        z_stu: (B, K) the student's logits (the masked model), float32/float64.
        z_tea: (B, K) the teacher's logits (zero-shot CLIP), same dtype.
        alpha: α in [0, 1], the teacher's share of the mixed target (required).
        temperature: T > 0 (required).
        detach_target: treat the mixed target as a constant in the backward (default False,
            the trainer's behaviour).

    Returns:
        loss: a 0-d array in the dtype of ``z_stu``.

    Reference: Zheng et al., arXiv:2307.15049, §3 (knowledge-distillation regularization
    towards zero-shot CLIP); the released trainer's ``KLLoss`` (``tea = α z_tea + (1 − α)
    z_stu``, ``T²``-scaled cross-entropy of the tempered softmaxes, batch mean).

    >>> import numpy as np, refimpl
    >>> z = np.array([[0.0, 0.0]])                       # uniform student and teacher
    >>> float(refimpl.adapters.ramt_distillation_loss(z, z, alpha=0.5, temperature=2.0))  # 4·log 2
    2.772588722239781
    """
    dtype = z_stu.dtype.type
    inverse_t = dtype(1.0 / temperature)
    log_q = log_softmax(z_stu * inverse_t)
    mixed = dtype(alpha) * z_tea + dtype(1.0 - alpha) * z_stu
    target = softmax(mixed * inverse_t)
    batch = z_stu.shape[0]
    per_row = -np.sum(target * log_q, axis=-1, dtype=np.float64)
    loss = np.asarray(temperature**2 * per_row.sum() / batch, dtype=z_stu.dtype)
    return loss, (log_q, target, alpha, temperature, detach_target)


@ramt_distillation_loss.defvjp
def ramt_distillation_loss_backward(residuals, g_loss):
    log_q, target, alpha, temperature, detach_target = residuals
    batch = log_q.shape[0]
    factor = float(g_loss) * temperature / batch  # L̄·T/B
    g_z = np.exp(log_q) - target  # q − t: through ℓ
    if not detach_target:
        # through t: softmax's VJP of ℓ = −log q, times (1 − α)
        g_z = g_z + (1.0 - alpha) * softmax_backward(target, -log_q)
    return ((factor * g_z).astype(log_q.dtype, copy=False),)
