"""PS-KD (Self-Knowledge Distillation with Progressive Refinement of Targets)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    log_softmax,
    op,
    reduce_rows,
    row_weights,
    softmax,
)

__all__ = ["PAPER", "pskd_alpha_schedule", "pskd_loss", "pskd_memory_update", "pskd_targets"]

PAPER = Paper(
    "Self-Knowledge Distillation with Progressive Refinement of Targets",
    arxiv="2006.12000",
    year=2021,
    code="lgcnsai/PS-KD-Pytorch",
)


def _check_schedule(arguments) -> None:
    epochs, end_epoch = arguments["epochs"], arguments["end_epoch"]
    xp = array_namespace(epochs)
    if epochs.size and int(xp.max(epochs)) >= end_epoch:
        raise ArgumentError(
            "epochs",
            f"0-based epochs in [0, end_epoch) = [0, {end_epoch}) (α_t would exceed α_T)",
            f"epoch {int(xp.max(epochs))}",
        )


@op(
    inputs={
        "epochs": IntArray("N", low=0),
        "end_epoch": IntScalar(1),
        "alpha_T": RealScalar(0, 1),
    },
    outputs=("alpha_t",),
    check=_check_schedule,
)
def pskd_alpha_schedule(epochs, *, end_epoch, alpha_T=0.8):  # noqa: N803 - the paper's α_T
    r"""PS-KD's weight on the past predictions: a linear ramp that reaches α_T in the last epoch.

    Early in training the model's own predictions are poor, so the target leans on the
    hard label; the weight of the past predictions grows linearly with the epoch::

        α_t = α_T · (epoch + 1) / end_epoch          (epoch = 0, 1, …, end_epoch − 1)

    The paper writes ``α_t = α_T · t/T`` with t counted from 1; the official code counts
    epochs from 0 and uses ``epoch + 1`` — the same values: the first epoch already has
    ``α_T/end_epoch`` (not 0), the last exactly α_T. (The official ``max(0, α_t)`` never
    binds for epochs ≥ 0.) In the first epoch the memory still holds the one-hot labels, so
    the targets equal the labels whatever α_0 is (``pskd_targets(..., first_epoch=True)``).

    Args:
        epochs: 0-based epoch indices (N,), in [0, end_epoch).
        end_epoch: the number of training epochs T ≥ 1 (required; 300 for CIFAR-100 in the paper).
        alpha_T: α_T ∈ [0, 1] (default 0.8, the paper's CIFAR-100 value).

    Returns:
        alpha_t: α_t (N,), float64.

    Reference: Kim et al., *Self-Knowledge Distillation with Progressive Refinement of
    Targets*, ICCV 2021, arXiv:2006.12000; official code lgcnsai/PS-KD-Pytorch (``main.py``).

    >>> import numpy as np, refimpl
    >>> refimpl.losses.pskd_alpha_schedule(np.array([0, 1, 3]), end_epoch=4)
    array([0.2, 0.4, 0.8])
    """
    alpha_t = alpha_T * (epochs.astype(np.float64) + 1) / end_epoch
    return alpha_t, None


@op(
    inputs={
        "y": IntArray("B", low=0, high="K"),
        "idx": IntArray("B", low=0, high="N"),
        "memory": FloatArray("N", "K"),
        "alpha_t": RealScalar(0, 1),
        "first_epoch": Flag(),
    },
    outputs=("targets",),
)
def pskd_targets(y, idx, memory, *, alpha_t, first_epoch=False):
    r"""PS-KD soft targets: the hard label mixed with the model's own prediction from the last epoch.

    The model distils from its past self: the target of sample i at epoch t mixes its
    one-hot label with the softmax the model gave it in epoch t − 1 (kept in a memory of
    shape (N, K), one row per training sample)::

        t_i = (1 − α_t) Y_i + α_t P_prev[idx_i]

    Each row of ``t`` sums to 1 when the memory rows do. In the first epoch the official code
    fills the batch's memory rows with the one-hot labels before mixing, so ``t = Y``:
    ``first_epoch=True`` does that (the memory is then not read).

    Args:
        y: labels (B,), integers in [0, K).
        idx: the batch's sample indices (B,) into the memory.
        memory: P_prev (N, K), float32 or float64: the detached softmax recorded for each
            sample in the previous epoch (``pskd_memory_update``).
        alpha_t: α_t ∈ [0, 1] (``pskd_alpha_schedule``).
        first_epoch: epoch 0, when the memory holds the labels (default False).

    Returns:
        targets: t (B, K), in the dtype of ``memory``. No gradient (targets are constants).

    Reference: arXiv:2006.12000; official ``main.py`` (``soft_targets``) of lgcnsai/PS-KD-Pytorch.

    >>> import numpy as np, refimpl
    >>> memory = np.array([[0.5, 0.5], [0.1, 0.9]])
    >>> refimpl.losses.pskd_targets(np.array([0]), np.array([1]), memory, alpha_t=0.5)
    array([[0.55, 0.45]])
    """
    dtype = memory.dtype
    batch, num_classes = y.shape[0], memory.shape[1]
    one_hot = np.zeros((batch, num_classes), dtype=dtype)
    one_hot[np.arange(batch), y] = 1
    if first_epoch:
        return one_hot, None
    alpha = dtype.type(alpha_t)
    return (1 - alpha) * one_hot + alpha * memory[idx], None


@op(
    inputs={
        "z": FloatArray("B", "K"),
        "targets": FloatArray("B", "K"),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z",),
)
def pskd_loss(z, targets, *, reduction="mean"):
    r"""PS-KD's training loss: cross-entropy with the progressively refined soft targets.

    Forward, per row (``t`` from ``pskd_targets``; the official ``Custom_CrossEntropy_PSKD``
    takes ``(−t · log_softmax(z)).mean(0).sum()``, a mean over the batch and a sum over the
    classes)::

        ℓ_i = −Σ_k t_ik log softmax(z_i)_k            (max-shifted log-softmax)
        L   = mean_i ℓ_i   (reduction="mean"; "sum"; "none")

    Backward. With ``p = softmax(z)`` and ``∂log p_k/∂z_j = δ_kj − p_j``::

        ∂ℓ_i/∂z_ij = −t_ij + p_ij Σ_k t_ik   = p_ij − t_ij   when Σ_k t_ik = 1

    and ``z̄_i = w_i (p_i Σ_k t_ik − t_i)`` with ``w_i`` the row's cotangent (``ḡ/B`` for the
    mean: ``(p − t)/B``). The code uses the general form, exact for any targets. The
    targets are constants (no cotangent). Hard-example view (paper): for the ground-truth
    class, ``−B·∂L/∂z_GT = (1 − α_t)(1 − p_GT) + α_t(p^prev_GT − p_GT)``: an example the model
    found hard last epoch (small ``p^prev_GT``) gets a smaller push than under CE.

    Args:
        z: logits (B, K), float32 or float64.
        targets: soft targets t (B, K), same dtype (rows on the simplex).
        reduction: "mean" (default, the official loss), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the dtype of ``z``.

    Reference: arXiv:2006.12000; official ``loss/pskd_loss.py`` of lgcnsai/PS-KD-Pytorch.

    >>> import numpy as np, refimpl
    >>> z, t = np.array([[0.0, 0.0]]), np.array([[0.8, 0.2]])
    >>> round(float(refimpl.losses.pskd_loss(z, t)), 7)  # log 2
    0.6931472
    """
    dtype = z.dtype
    log_p = log_softmax(z)
    per_row = -(targets * log_p).sum(axis=-1)
    return reduce_rows(per_row, reduction, dtype), (softmax(z), targets, reduction)


@pskd_loss.defvjp
def pskd_loss_backward(residuals, g_loss):
    p, targets, reduction = residuals
    dtype = p.dtype
    batch = p.shape[0]
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, batch)[:, None]
    g_z = w * (p * targets.sum(axis=-1, keepdims=True) - targets)
    return (g_z.astype(dtype, copy=False),)


def _check_unique_idx(arguments) -> None:
    idx = arguments["idx"]
    xp = array_namespace(idx)
    if xp.unique(idx).shape[0] != idx.shape[0]:
        raise ArgumentError(
            "idx", "distinct sample indices (each memory row is written once)", "a repeated index"
        )


@op(
    inputs={
        "memory": FloatArray("N", "K"),
        "idx": IntArray("B", low=0, high="N"),
        "z": FloatArray("B", "K"),
    },
    outputs=("memory",),
    check=_check_unique_idx,
)
def pskd_memory_update(memory, idx, z):
    r"""PS-KD's memory update: record this batch's (detached) softmax for the next epoch.

    After the optimizer step the official code overwrites the memory rows of the batch with
    ``softmax(z)`` of the logits computed BEFORE the step, in training mode (on the augmented
    inputs)::

        P[idx_i] ← softmax(z_i)          every other row unchanged

    A new array is returned (the input memory is not modified).

    Args:
        memory: P (N, K), float32 or float64.
        idx: the batch's sample indices (B,), distinct.
        z: the batch's logits (B, K), same dtype, from the forward pass of this step.

    Returns:
        memory: the updated P (N, K). No gradient (a detached state).

    Reference: arXiv:2006.12000; official ``main.py`` (``all_predictions[input_indices] =
    softmax_output.cpu().detach()``) of lgcnsai/PS-KD-Pytorch.

    >>> import numpy as np, refimpl
    >>> refimpl.losses.pskd_memory_update(np.zeros((2, 2)), np.array([1]), np.array([[0.0, 0.0]]))
    array([[0. , 0. ],
           [0.5, 0.5]])
    """
    new_memory = memory.copy()
    new_memory[idx] = softmax(z)
    return new_memory, None
