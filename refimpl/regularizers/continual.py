"""Rehearsal-free continual-learning regularizers: L2 anchoring, EWC with the empirical Fisher
diagonal, and feature distillation (A Closer Look at Rehearsal-Free Continual Learning)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, OneOf, RealScalar, array_namespace, op
from ..losses.distillation import PAPER  # the same paper's prediction distillation, distillation_kl

__all__ = [
    "PAPER",
    "empirical_fisher_diagonal",
    "ewc_penalty",
    "feature_distillation_loss",
    "l2_anchor_regularizer",
]

# The paper writes the three penalties with a weight λ (its Sec. 3) that is tuned per benchmark
# and not stated as one value: λ is a required argument of every op below.


def _squared_sum(values):
    """``Σ values²`` accumulated in float64 (a float32 sum over 10⁸ weights loses digits)."""
    return np.sum(np.square(values, dtype=np.float64))


@op(
    inputs={
        "theta": FloatArray("..."),
        "theta_star": FloatArray("..."),
        "lam": RealScalar(0),
    },
    outputs=("penalty",),
    differentiable=("theta",),
)
def l2_anchor_regularizer(theta, theta_star, *, lam):
    r"""L2 anchoring: pull the weights towards the ones learned before the current task.

    Rehearsal-free continual learning keeps no data of past tasks; what it keeps is the model
    θ* at the end of the previous task. The simplest regularizer is a quadratic well around
    it, an isotropic Gaussian prior centred on θ*. The paper finds that this plain anchor,
    applied to a pre-trained ViT's self-attention blocks, beats EWC and feature distillation.

    Forward (θ and θ* of the same shape, any rank; flatten and concatenate a model's
    tensors, or call once per tensor and add)::

        Δ = θ − θ*                                    (in the input dtype)
        R = (λ/2) Σ_i Δ_i²                            (the sum accumulated in float64)

    Backward. ``∂(Δ_i²)/∂θ_i = 2Δ_i`` and ``∂Δ_j/∂θ_i = δ_ij``, so with the cotangent ḡ of R::

        θ̄ = ḡ · (λ/2) · 2Δ = ḡ λ (θ − θ*)

    θ* is the frozen previous model: it gets no gradient.

    Args:
        theta: the current weights θ (any shape), float32 or float64.
        theta_star: the anchor θ* (the weights after the previous task), same shape.
        lam: the weight λ ≥ 0. Required: the paper tunes it per benchmark (no value stated).
            The penalty is written (λ/2)Σ(θ − θ*)², the EWC convention; a code base that writes
            ``λ'·Σ(θ − θ*)²`` (e.g. ``EWC_MC.update_model`` in the co-author's repository
            shaunak27/data-free-continual-learning, ``learners/kd.py``) uses λ = 2λ'.

    Returns:
        penalty: R, a 0-d array in the input dtype.

    Reference: Smith, Tian, Halbe, Hsu, Kira, *A Closer Look at Rehearsal-Free Continual
    Learning*, CVPR Workshops 2023, arXiv:2203.17269 (the L2 and EWC regularizers, Sec. 3).

    >>> import numpy as np, refimpl
    >>> theta, theta_star = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])
    >>> float(refimpl.regularizers.l2_anchor_regularizer(theta, theta_star, lam=0.5))  # ¼(0 + 4 + 1)
    1.25
    """
    difference = theta - theta_star
    penalty = 0.5 * lam * _squared_sum(difference)
    return np.asarray(penalty, dtype=theta.dtype), (difference, lam)


@l2_anchor_regularizer.defvjp
def l2_anchor_regularizer_backward(residuals, g_penalty):
    difference, lam = residuals
    dtype = difference.dtype.type
    w = dtype(lam) * np.asarray(g_penalty).astype(difference.dtype)  # ḡ λ
    return ((w * difference).astype(difference.dtype, copy=False),)


def _check_fisher(arguments) -> None:
    fisher = arguments["fisher"]
    xp = array_namespace(fisher)
    negative = fisher < 0
    if bool(xp.any(negative)):
        index = tuple(int(i) for i in np.unravel_index(int(xp.argmax(negative.ravel())), fisher.shape))
        raise ArgumentError(
            "fisher",
            "a Fisher information diagonal F ≥ 0 (a mean of squared gradients: empirical_fisher_diagonal)",
            f"{float(fisher[index])!r} at index {index}",
        )


@op(
    inputs={
        "theta": FloatArray("..."),
        "theta_star": FloatArray("..."),
        "fisher": FloatArray("..."),
        "lam": RealScalar(0),
    },
    outputs=("penalty",),
    differentiable=("theta",),
    check=_check_fisher,
)
def ewc_penalty(theta, theta_star, fisher, *, lam):
    r"""Elastic weight consolidation: an L2 anchor weighted per weight by the Fisher information.

    EWC (Kirkpatrick et al. 2017) approximates the posterior of the previous task by a
    Gaussian centred on θ* whose precision is the diagonal of the Fisher information F: a
    weight the old task's likelihood is sensitive to (large F_i) is held firmly, one it
    ignores (F_i = 0) is free. With F = 1 everywhere it is ``l2_anchor_regularizer``.

    Forward (θ, θ*, F of the same shape, any rank)::

        Δ = θ − θ*                                    (in the input dtype)
        R = (λ/2) Σ_i F_i Δ_i²                        (the products and the sum in float64)

    Backward. F and θ* are constants of the previous task; ``∂(F_i Δ_i²)/∂θ_i = 2F_iΔ_i``::

        θ̄ = ḡ · (λ/2) · 2 F ⊙ Δ = ḡ λ F ⊙ (θ − θ*)

    Args:
        theta: the current weights θ (any shape), float32 or float64.
        theta_star: the weights θ* after the previous task, same shape.
        fisher: the Fisher information diagonal F ≥ 0 (checked), same shape; from
            ``empirical_fisher_diagonal`` on per-sample gradients of the previous task.
        lam: the weight λ ≥ 0. Required: tuned per benchmark in the paper (no value stated).
            Code bases that write ``λ'·Σ F(θ − θ*)²`` (no ½; the co-author's
            shaunak27/data-free-continual-learning, ``learners/kd.py`` ``EWC_MC``) use λ = 2λ'.

    Returns:
        penalty: R, a 0-d array in the input dtype.

    Reference: Smith et al., *A Closer Look at Rehearsal-Free Continual Learning*,
    arXiv:2203.17269 (Sec. 3, EWC baseline); Kirkpatrick et al., *Overcoming catastrophic
    forgetting in neural networks*, PNAS 2017, Eq. 3.

    >>> import numpy as np, refimpl
    >>> theta, theta_star = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])
    >>> fisher = np.array([5.0, 0.25, 2.0])
    >>> float(refimpl.regularizers.ewc_penalty(theta, theta_star, fisher, lam=2.0))  # 0 + 1 + 2
    3.0
    """
    difference = theta - theta_star
    penalty = 0.5 * lam * np.sum(fisher.astype(np.float64) * np.square(difference, dtype=np.float64))
    return np.asarray(penalty, dtype=theta.dtype), (difference, fisher, lam)


@ewc_penalty.defvjp
def ewc_penalty_backward(residuals, g_penalty):
    difference, fisher, lam = residuals
    dtype = difference.dtype.type
    w = dtype(lam) * np.asarray(g_penalty).astype(difference.dtype)  # ḡ λ
    return ((w * fisher * difference).astype(difference.dtype, copy=False),)


def _check_features(arguments) -> None:
    if arguments["reduction"] == "batchmean" and arguments["h_new"].ndim < 2:
        raise ArgumentError(
            "reduction",
            "'batchmean' only with a batch axis: features of shape (B, ..., D), 2-D or more "
            "(or reduction='mean')",
            f"features of shape {tuple(arguments['h_new'].shape)}",
        )


@op(
    inputs={
        "h_new": FloatArray("...", "D"),
        "h_old": FloatArray("...", "D"),
        "reduction": OneOf("batchmean", "mean"),
    },
    outputs=("loss",),
    differentiable=("h_new",),
    check=_check_features,
)
def feature_distillation_loss(h_new, h_old, *, reduction="batchmean"):
    r"""Feature distillation: keep the current model's features where the previous model had them.

    Instead of the weights (``l2_anchor_regularizer``, ``ewc_penalty``) or the predictions
    (``distillation_kl``), the regularizer anchors the representation: the features h_new of
    the model being trained are pulled towards the features h_old that the frozen previous
    model computes on the same (current-task) inputs.

    Forward (features (B, ..., D); B the first axis, the batch)::

        L = (1/B) Σ_b ‖h_new,b − h_old,b‖²            reduction="batchmean" (default: the
                                                      paper's squared distance, mean over the batch)
        L = (1/n) Σ (h_new − h_old)²                  reduction="mean": over all n = B·…·D
                                                      elements (PyTorch ``MSELoss()``)

    evaluated as one sum of squared differences (float64) divided by the count c = B or n.

    Backward. ``∂(Δ²)/∂h_new = 2Δ`` with Δ = h_new − h_old, so with the cotangent ḡ of L::

        h̄_new = ḡ · 2 (h_new − h_old) / c             (2Δ/B with "batchmean")

    h_old comes from the frozen previous model and gets no gradient.

    Args:
        h_new: features of the model being trained, (B, ..., D), float32 or float64.
        h_old: the previous model's features on the same inputs, same shape.
        reduction: "batchmean" (default: ‖h_new − h_old‖² averaged over the batch, as the
            paper states the loss) or "mean" (over every element: ``MSELoss(...).mean()``, as
            ``LWF_MC_FEATKD.update_model`` in the co-author's repository
            shaunak27/data-free-continual-learning, ``learners/kd.py``; the two differ by the
            factor n/B = the feature size). The loss weight is the caller's (tuned per
            benchmark; not stated in the paper).

    Returns:
        loss: L, a 0-d array in the input dtype.

    Reference: Smith et al., *A Closer Look at Rehearsal-Free Continual Learning*,
    arXiv:2203.17269 (Sec. 3, feature distillation baseline).

    >>> import numpy as np, refimpl
    >>> h_new, h_old = np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[1.0, 0.0], [3.0, 0.0]])
    >>> float(refimpl.regularizers.feature_distillation_loss(h_new, h_old))  # (4 + 9)/2
    6.5
    """
    count = h_new.shape[0] if reduction == "batchmean" else h_new.size
    difference = h_new - h_old
    loss = _squared_sum(difference) / count
    return np.asarray(loss, dtype=h_new.dtype), (difference, count)


@feature_distillation_loss.defvjp
def feature_distillation_loss_backward(residuals, g_loss):
    difference, count = residuals
    dtype = difference.dtype.type
    w = dtype(2.0 / count) * np.asarray(g_loss).astype(difference.dtype)  # 2ḡ/c
    return ((w * difference).astype(difference.dtype, copy=False),)


@op(
    inputs={"per_sample_grads": FloatArray("N", "P")},
    outputs=("fisher",),
)
def empirical_fisher_diagonal(per_sample_grads):
    r"""The empirical Fisher information diagonal: the mean over samples of squared gradients.

    The Fisher information of a model p(y|x, θ) is ``E[∇log p ∇log pᵀ]``; EWC keeps only its
    diagonal, and the empirical Fisher replaces the expectation over the model's labels by the
    data's labels: one squared gradient per training sample, averaged::

        F_i = (1/N) Σ_n g_n,i²,     g_n = ∂ log p(y_n | x_n, θ)/∂θ     (the sum in float64)

    The input is the matrix of PER-SAMPLE gradients (N, P) (one row per sample, e.g. from
    ``torch.func.vmap(grad(...))``); the sign convention does not matter (the gradient of the
    loss −log p squares to the same F). Squaring the gradient of the batch-mean loss,
    ``((1/N)Σ_n g_n)²``, is NOT the Fisher: the per-sample gradients of a trained model nearly
    cancel in their mean, while their squares do not (``(1/N)Σ g_n² ≥ ((1/N)Σ g_n)²``, equal
    only when all rows agree). Code bases that accumulate minibatch gradients ``|b|·ḡ_b²``
    (e.g. ``EWC_MC.accumulate_block_memory``, shaunak27/data-free-continual-learning,
    ``learners/kd.py``) compute this op on the rows ``√|b|·ḡ_b``: cheaper, but its expectation
    per weight is ``σ² + |b|·μ²`` (μ, σ² the mean and variance of g_n,i) where F's is ``σ² + μ²``.

    The "true Fisher" samples the labels from the model, ``y_n ~ p(·|x_n, θ)``: the same op on
    the gradients at those sampled labels (the sampling is the caller's, as every random draw).

    A one-off statistic, not a training term: not differentiable.

    Args:
        per_sample_grads: per-sample gradients g (N, P), N ≥ 1 samples, P weights (flattened),
            float32 or float64.

    Returns:
        fisher: F (P,), ≥ 0, in the input dtype.

    Reference: Smith et al., *A Closer Look at Rehearsal-Free Continual Learning*,
    arXiv:2203.17269 (Sec. 3, EWC's importance); Kirkpatrick et al., PNAS 2017 (EWC's diagonal
    Fisher); Kunstner, Hennig, Balles, *Limitations of the empirical Fisher approximation*,
    NeurIPS 2019 (empirical vs true Fisher).

    >>> import numpy as np, refimpl
    >>> g = np.array([[1.0, -2.0], [-1.0, 2.0]])  # the mean gradient is 0
    >>> refimpl.regularizers.empirical_fisher_diagonal(g)
    array([1., 4.])
    """
    num_samples = per_sample_grads.shape[0]
    fisher = np.square(per_sample_grads, dtype=np.float64).sum(axis=0) / num_samples
    return fisher.astype(per_sample_grads.dtype), None
