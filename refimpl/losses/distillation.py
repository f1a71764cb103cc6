"""Temperature knowledge distillation, T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) (Hinton et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, OneOf, Paper, RealScalar, log_softmax, op

__all__ = ["PAPER", "distillation_kl"]

PAPER = Paper(
    "A Closer Look at Rehearsal-Free Continual Learning",
    arxiv="2203.17269",
    year=2023,
)


def _check(arguments) -> None:
    if arguments["reduction"] == "batchmean" and arguments["z_student"].ndim < 2:
        raise ArgumentError(
            "reduction",
            "'batchmean' only with a batch axis: logits of shape (B, ..., K), 2-D or more",
            f"logits of shape {tuple(arguments['z_student'].shape)}",
        )


@op(
    inputs={
        "z_student": FloatArray("...", "K"),
        "z_teacher": FloatArray("...", "K"),
        "temperature": RealScalar(0, low_open=True),
        "scale": OneOf("T2", "none"),
        "form": OneOf("kl", "cross_entropy"),
        "reduction": OneOf("mean", "batchmean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z_student", "z_teacher"),
    check=_check,
)
def distillation_kl(z_student, z_teacher, *, temperature, scale="T2", form="kl", reduction="mean"):
    r"""Knowledge distillation: match the student's softened distribution to the teacher's.

    Both logit vectors are divided by a temperature T > 1 before the softmax, which exposes
    the teacher's "dark knowledge" (the relative sizes of the small probabilities); the loss
    is multiplied by T² so that its gradient keeps the same scale as T changes.

    Forward, per row i (every index of the leading axes; K classes on the last axis)::

        q_i  = softmax(z_student_i / T)           (log q by a max-shifted log-softmax)
        p_i  = softmax(z_teacher_i / T)
        ℓ_i  = Σ_k p_ik (log p_ik − log q_ik)     form="kl" (default): KL(p_i ‖ q_i) ≥ 0
        ℓ_i  = −Σ_k p_ik log q_ik                 form="cross_entropy": KL + the teacher entropy
        ℓ_i ← T²·ℓ_i                              scale="T2" (default); scale="none" keeps ℓ_i
        L    = mean_i ℓ_i                         reduction="mean" (default: over all rows)
               Σ_i ℓ_i / B                        "batchmean" (B = the first axis: 3-D logits
                                                  (B, T, V) sum over tokens, divide by B only)
               Σ_i ℓ_i                            "sum";  "none": ℓ, shape z.shape[:-1]

    For 2-D logits "mean" equals PyTorch's ``kl_div(..., reduction="batchmean")``.
    Conventions of the papers that use this op: Expert Merging (arXiv:2509.25712, official
    ``compute_ce_loss``) trains with ``form="cross_entropy"``, ``scale="T2"``, T = 3 and
    ``reduction="mean"`` over all token positions; PyCIL's WA uses ``form="cross_entropy"``,
    ``scale="none"``. The two forms differ by the teacher entropy, a constant for the student,
    so their student gradients are identical.

    Backward. Let ``u = z/T`` and ``w_i`` the weight of row i in the reduction times the
    cotangent (``ḡ/R`` for mean over R rows, ``ḡ/B`` batchmean, ``ḡ`` sum, ``ḡ_i`` none), and
    ``s`` = T² or 1. Student side (both forms): ``∂(−Σ_k p_k log q_k)/∂u_s = q − p`` (the
    softmax cross-entropy gradient with soft targets), and ``∂u/∂z = 1/T``::

        z̄_student,i = w_i · s · (q_i − p_i) / T            (= T(q − p)/R for T², mean)

    Teacher side (a teacher that is not detached). With ``log p = u_t − logsumexp(u_t)``,
    ``∂p_k/∂u_t,j = p_k(δ_kj − p_j)`` and ``∂log p_k/∂u_t,j = δ_kj − p_j``:

        form="kl":             ∂ℓ/∂u_t,j = p_j (log p_j − log q_j − ℓ_i^KL)
                               (the Σ_k p_k(δ_kj − p_j) from ∂log p cancels to 0)
        form="cross_entropy":  ∂ℓ/∂u_t,j = −p_j (log q_j − Σ_k p_k log q_k)
        z̄_teacher,i = w_i · s · ∂ℓ/∂u_t / T

    Both cotangents sum to 0 over the classes (softmax is shift-invariant).

    Args:
        z_student: student logits (..., K), float32 or float64 (e.g. (B, K) or (B, T, V)).
        z_teacher: teacher logits, same shape and dtype (log-probabilities also work at T = 1).
        temperature: T > 0 (no default: Expert Merging uses 3, other papers 1 to 20).
        scale: "T2" (default) multiplies by T², "none" does not.
        form: "kl" (default) or "cross_entropy" (soft-target cross-entropy).
        reduction: "mean" (default), "batchmean", "sum" or "none".

    Returns:
        loss: a scalar, or ℓ of shape ``z.shape[:-1]`` (reduction="none"), in the input dtype.

    Reference: Hinton et al., *Distilling the Knowledge in a Neural Network*, arXiv:1503.02531
    (the T² scaling); Smith et al., *A Closer Look at Rehearsal-Free Continual
    Learning*, arXiv:2203.17269; Expert Merging's form from Littleor/ExpertMerging.

    >>> import numpy as np, refimpl
    >>> z_s, z_t = np.array([[0.0, 0.0]]), np.array([[2.0, 0.0]])
    >>> round(float(refimpl.losses.distillation_kl(z_s, z_t, temperature=2.0)), 6)
    0.443776
    """
    dtype = z_student.dtype.type
    inverse_t = dtype(1 / temperature)
    log_q = log_softmax(z_student * inverse_t)
    log_p = log_softmax(z_teacher * inverse_t)
    p = np.exp(log_p)
    if form == "kl":
        per_row = (p * (log_p - log_q)).sum(axis=-1)
    else:
        per_row = -(p * log_q).sum(axis=-1)
    factor = dtype(temperature * temperature) if scale == "T2" else dtype(1)
    per_row = factor * per_row
    if reduction == "mean":
        loss, row_weight = per_row.mean(), 1 / max(per_row.size, 1)
    elif reduction == "batchmean":
        loss, row_weight = per_row.sum() / dtype(z_student.shape[0]), 1 / z_student.shape[0]
    elif reduction == "sum":
        loss, row_weight = per_row.sum(), 1.0
    else:
        loss, row_weight = per_row, None
    loss = np.asarray(loss, dtype=z_student.dtype)
    residuals = (log_q, log_p, p, per_row / factor, factor * inverse_t, row_weight, form)
    return loss, residuals


@distillation_kl.defvjp
def distillation_kl_backward(residuals, g_loss):
    log_q, log_p, p, per_row, factor_over_t, row_weight, form = residuals
    dtype = log_q.dtype.type
    if row_weight is None:  # reduction="none": one cotangent per row
        w = g_loss[..., None] * factor_over_t
    else:
        w = g_loss * dtype(row_weight) * factor_over_t
    q = np.exp(log_q)
    g_student = w * (q - p)
    if form == "kl":
        g_teacher = w * (p * (log_p - log_q - per_row[..., None]))
    else:
        cross = (p * log_q).sum(axis=-1, keepdims=True)
        g_teacher = -w * (p * (log_q - cross))
    return g_student.astype(log_q.dtype, copy=False), g_teacher.astype(log_q.dtype, copy=False)
