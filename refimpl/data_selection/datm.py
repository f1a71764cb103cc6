"""DATM trajectory matching: the normalized parameter-matching loss and the unrolled SGD of a
softmax-linear student (Towards Lossless Dataset Distillation via Difficulty-Aligned
Trajectory Matching)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    FloatArray,
    IntArray,
    Paper,
    array_namespace,
    op,
    softmax,
    softmax_backward,
)

__all__ = ["PAPER", "trajectory_matching_loss", "unrolled_sgd_softmax_linear"]

PAPER = Paper(
    "Towards Lossless Dataset Distillation via Difficulty-Aligned Trajectory Matching",
    arxiv="2310.05773",
    year=2024,
    code="NUS-HPC-AI-Lab/DATM",
)


def _check_distance(arguments) -> None:
    start, target = arguments["theta_start"], arguments["theta_target"]
    xp = array_namespace(start)
    difference = start.astype(xp.float64) - target.astype(xp.float64)
    if not bool(xp.any(difference != 0)):
        raise ArgumentError(
            "theta_start",
            "an expert start θ*_t different from the target θ*_{t+M} (the loss divides by "
            "‖θ*_t − θ*_{t+M}‖²)",
            "theta_start equals theta_target",
        )


@op(
    inputs={
        "theta_student": FloatArray("...", "P"),
        "theta_target": FloatArray("...", "P"),
        "theta_start": FloatArray("...", "P"),
    },
    outputs=("loss",),
    differentiable=("theta_student",),
    check=_check_distance,
)
def trajectory_matching_loss(theta_student, theta_target, theta_start):
    r"""MTT/DATM trajectory-matching loss: the student's distance to the expert's target
    checkpoint, normalized by the expert's own distance travelled.

    Matching training trajectories (MTT, Cazenavette et al.) and DATM start a student at an
    expert checkpoint θ*_t, train it N steps on the synthetic data (see
    :func:`unrolled_sgd_softmax_linear`) and ask it to land where the expert was M epochs
    later. The normalization by the expert's displacement makes the loss comparable across
    start epochs and layers of different scale.

    Forward (all parameters flattened into one vector; sums in float64)::

        L = ‖θ̂_{t+N} − θ*_{t+M}‖² / ‖θ*_t − θ*_{t+M}‖²

    DATM's code divides both sums by the parameter count before the ratio (``param_loss /=
    num_params``, ``param_dist /= num_params``): it cancels exactly and is not repeated here.

    Backward (only the student is differentiated; the expert checkpoints are data)::

        ∂L/∂θ̂ = 2(θ̂_{t+N} − θ*_{t+M}) / ‖θ*_t − θ*_{t+M}‖²,   θ̄̂ = ḡ_L ∂L/∂θ̂

    Not part of the op: DATM skips the outer update of images, labels and learning rate when
    ``L > threshold`` (1.0 in every shipped config) — a training-loop rule.

    Args:
        theta_student: the student's parameters after N inner steps θ̂_{t+N} (..., P), float32
            or float64 (any shape: the loss sums over every entry).
        theta_target: the expert checkpoint θ*_{t+M} (same shape).
        theta_start: the expert checkpoint θ*_t the student started from (same shape; must
            differ from the target somewhere).

    Returns:
        loss: the scalar L, in the input dtype.

    Reference: Guo et al., *Towards Lossless Dataset Distillation via Difficulty-Aligned
    Trajectory Matching*, ICLR 2024, arXiv:2310.05773 (the MTT loss it builds on); official code
    NUS-HPC-AI-Lab/DATM ``distill/DATM.py`` (``mse_loss(student_params[-1], target_params,
    reduction="sum")`` over ``mse_loss(starting_params, target_params, reduction="sum")``).

    >>> import numpy as np, refimpl
    >>> start, target = np.array([0.0, 0.0]), np.array([2.0, 0.0])  # the expert moved by 2
    >>> student = np.array([1.0, 1.0])  # ‖student − target‖² = 1 + 1
    >>> float(refimpl.data_selection.trajectory_matching_loss(student, target, start))
    0.5
    """
    dtype = theta_student.dtype
    difference = theta_student.astype(np.float64) - theta_target.astype(np.float64)
    travelled = theta_start.astype(np.float64) - theta_target.astype(np.float64)
    denominator = (travelled * travelled).sum()
    loss = (difference * difference).sum() / denominator
    return np.asarray(loss, dtype=dtype), (difference, denominator, dtype)


@trajectory_matching_loss.defvjp
def trajectory_matching_loss_backward(residuals, g_loss):
    difference, denominator, dtype = residuals
    scale = 2.0 * np.float64(np.asarray(g_loss)) / denominator
    return ((scale * difference).astype(dtype),)


@op(
    inputs={
        "theta_start": FloatArray("D", "K"),
        "x_syn": FloatArray("n", "D"),
        "y_syn": FloatArray("n", "K"),
        "lr": FloatArray(),
        "batch_indices": IntArray("N", "b", low=0, high="n"),
    },
    outputs=("theta",),
    differentiable=("x_syn", "y_syn", "lr"),
)
def unrolled_sgd_softmax_linear(theta_start, x_syn, y_syn, lr, batch_indices):
    r"""N unrolled SGD steps of a softmax-linear student on learnable synthetic data, labels
    and learning rate (the inner loop of MTT/DATM), with its reverse-mode VJP.

    The student starts at the expert checkpoint θ*_t (``theta_start``; the start epoch
    t ~ U[T⁻, T⁺] is drawn by the caller) and takes plain SGD steps (no momentum, as DATM's
    ``student_params[-1] - syn_lr * grad``) on minibatches of the synthetic set. Everything
    the step depends on — images X, soft labels Y, the step size α — is learned by
    back-propagating the trajectory-matching loss through the steps.

    Forward. For step k = 0..N−1 with minibatch B_k (row k of ``batch_indices``, b indices;
    the caller draws them, e.g. the chunks of a random permutation as DATM does)::

        Z_k = X_{B_k} θ_k                      (b, K) logits
        P_k = softmax(Z_k)                     (row max subtracted)
        R_k = s ⊙ P_k − Y_{B_k},   s_i = Σ_j Y_ij
        G_k = X_{B_k}ᵀ R_k / b                 ∇_θ of the mean soft-label CE
        θ_{k+1} = θ_k − α G_k

    The loss is PyTorch's ``cross_entropy`` with probability targets, ``ℓ_i = −Σ_j Y_ij log
    P_ij`` (DATM: ``criterion(x, this_y)``), whose logit gradient is ``s_i P_i − Y_i`` (= P − Y
    when the labels sum to one). The op returns θ_N.

    Backward (reverse mode through the stored iterates θ_k and P_k). Let θ̄ = θ̄_N. For k =
    N−1 down to 0, with ``V = −α θ̄_{k+1}`` the cotangent of G_k:

    * step size: ``ᾱ += −⟨G_k, θ̄_{k+1}⟩``;
    * ``G = Xᵀ R/b``: ``R̄ = X V/b`` and ``X̄ += R Vᵀ/b``;
    * ``R = s P − Y`` with ``s = Σ_j Y_j``: ``Ȳ_il += Σ_j R̄_ij P_ij − R̄_il`` and ``P̄ = s ⊙ R̄``;
    * softmax: ``Z̄ = P ⊙ (P̄ − ⟨P̄, P⟩)`` (per row);
    * ``Z = X θ``: ``X̄ += Z̄ θ_kᵀ`` and ``θ̄_k = θ̄_{k+1} + Xᵀ Z̄`` — the identity path plus the
      Hessian-vector product of the CE, ``−α ∇²ℓ θ̄_{k+1}``, in closed form;

    and X̄, Ȳ of the minibatch rows are scatter-added into the full arrays (an index drawn
    twice collects both contributions).

    Reference-only: the work is BLAS products (b×D by D×K per step, forward and backward)
    and a small softmax; NumPy's BLAS is the fast path, so no Numba or CuPy kernel is kept.

    Args:
        theta_start: the expert checkpoint θ*_t (D, K): a linear classifier without bias
            (append a constant-1 feature to X for one).
        x_syn: synthetic inputs X (n, D) (flattened images), float32 or float64.
        y_syn: soft labels Y (n, K) (DATM learns them, initialized from expert logits).
        lr: the learnable step size α, a 0-d array (DATM's ``syn_lr``, initialized to the
            expert's ``lr_teacher``).
        batch_indices: (N, b) the minibatch of every step, integers in [0, n) (N = the
            number of inner steps, DATM's ``syn_steps``; b its ``batch_syn``).

    Returns:
        theta: θ_N (D, K), in the input dtype.

    Reference: Guo et al., *Towards Lossless Dataset Distillation via Difficulty-Aligned
    Trajectory Matching*, ICLR 2024, arXiv:2310.05773 (the inner loop of MTT, Cazenavette et al.
    2022); official code NUS-HPC-AI-Lab/DATM ``distill/DATM.py`` (the ``syn_steps``
    loop). The papers' student is a ConvNet; the softmax-linear student is
    the closed-form case where the HVP is explicit.

    >>> import numpy as np, refimpl
    >>> theta = np.zeros((1, 2))  # one feature, two classes: P = (1/2, 1/2) at θ = 0
    >>> x, y = np.array([[2.0]]), np.array([[1.0, 0.0]])
    >>> refimpl.data_selection.unrolled_sgd_softmax_linear(theta, x, y, np.array(0.5), np.array([[0]]))
    array([[ 0.5, -0.5]])
    """
    dtype = theta_start.dtype
    alpha = lr.astype(dtype)
    theta = theta_start.copy()
    steps = []
    for batch in batch_indices:
        x, y = x_syn[batch], y_syn[batch]
        p = softmax(x @ theta)
        label_mass = y.sum(axis=-1, keepdims=True)  # s_i = Σ_j Y_ij (1 for probability labels)
        r = label_mass * p - y
        grad = x.T @ r / dtype.type(len(batch))
        steps.append((theta, p, label_mass, r, grad))
        theta = theta - alpha * grad
    return theta.astype(dtype, copy=False), (steps, x_syn, y_syn, alpha, batch_indices)


@unrolled_sgd_softmax_linear.defvjp
def unrolled_sgd_softmax_linear_backward(residuals, g_theta):
    steps, x_syn, y_syn, alpha, batch_indices = residuals
    dtype = x_syn.dtype
    theta_bar = np.asarray(g_theta).astype(dtype)
    g_x = np.zeros_like(x_syn)
    g_y = np.zeros_like(y_syn)
    g_lr = dtype.type(0)
    for batch, (theta, p, label_mass, r, grad) in zip(batch_indices[::-1], steps[::-1], strict=True):
        x = x_syn[batch]
        size = dtype.type(len(batch))
        g_lr = g_lr - (grad * theta_bar).sum()  # θ_{k+1} = θ_k − α G_k
        v = -alpha * theta_bar  # the cotangent of G_k
        r_bar = x @ v / size  # G = Xᵀ R / b
        x_bar = r @ v.T / size
        y_bar = (r_bar * p).sum(axis=-1, keepdims=True) - r_bar  # R = s P − Y, s = Σ Y
        z_bar = softmax_backward(p, label_mass * r_bar)
        x_bar += z_bar @ theta.T  # Z = X θ
        theta_bar = theta_bar + x.T @ z_bar  # identity path + the closed-form HVP
        np.add.at(g_x, batch, x_bar)
        np.add.at(g_y, batch, y_bar)
    return g_x, g_y, np.asarray(g_lr, dtype=dtype)
