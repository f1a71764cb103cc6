"""ConTraCon: convolutional re-weighting of attention weights and entropic task inference
(Exemplar-Free Continual Transformer with Convolutions)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    Paper,
    known_deviation,
    log_softmax,
    op,
    sigmoid,
    softmax,
)

__all__ = [
    "OFFICIAL_LOG_EPS",
    "PAPER",
    "contracon_conv_weight",
    "correlate_same",
    "correlate_same_vjp",
    "entropy_task_inference",
]

PAPER = Paper(
    "Exemplar-Free Continual Transformer with Convolutions",
    arxiv="2308.11357",
    year=2023,
    code="CVIR/contracon",
)

# the official entropy adds this inside the log: -Σ p log(p + 1e-4) (auto_run.py, check_task)
OFFICIAL_LOG_EPS = 1e-4


def correlate_same(W: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``(W ⋆ K)[i, j] = Σ_{a,b} K[a, b]·W[i + a − p, j + b − p]``, zero outside W, p = (k − 1)/2.

    PyTorch ``conv2d`` semantics (cross-correlation, no kernel flip), stride 1, dilation 1,
    "same" output size; W is (..., P, I) (leading dimensions are heads), K is (..., k, k)
    with the same leading dimensions. Evaluated as k² shifted multiply-adds over a zero-padded copy.
    """
    k = K.shape[-1]
    p = (k - 1) // 2
    rows, cols = W.shape[-2:]
    padded = np.zeros((*W.shape[:-2], rows + 2 * p, cols + 2 * p), dtype=W.dtype)
    padded[..., p : p + rows, p : p + cols] = W
    out = np.zeros_like(W)
    for a in range(k):
        for b in range(k):
            out += K[..., a, b, None, None] * padded[..., a : a + rows, b : b + cols]
    return out


def correlate_same_vjp(W: np.ndarray, K: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cotangents of ``correlate_same(W, K)`` for the output cotangent G: ``(W̄, K̄)``.

    ``K̄[a, b] = Σ_{i,j} G[i, j]·W_pad[i + a, j + b]`` (cross-correlation of the padded W with G)
    and ``W̄[u, v] = Σ_{a,b} K[a, b]·G[u − a + p, v − b + p]`` (G correlated with the flipped K).
    """
    k = K.shape[-1]
    p = (k - 1) // 2
    rows, cols = W.shape[-2:]
    lead = W.shape[:-2]
    padded_W = np.zeros((*lead, rows + 2 * p, cols + 2 * p), dtype=W.dtype)
    padded_W[..., p : p + rows, p : p + cols] = W
    g_W_padded = np.zeros_like(padded_W)
    g_K = np.zeros_like(K)
    for a in range(k):
        for b in range(k):
            window = (..., slice(a, a + rows), slice(b, b + cols))
            g_K[..., a, b] = np.sum(G * padded_W[window], axis=(-2, -1))
            g_W_padded[window] += K[..., a, b, None, None] * G
    return g_W_padded[..., p : p + rows, p : p + cols].copy(), g_K


def _check_conv(arguments) -> None:
    W, K = arguments["W"], arguments["K"]
    heads, k = K.shape[0], K.shape[1]
    if k % 2 == 0:
        raise ArgumentError("K", "an odd kernel size k (zero padding (k − 1)/2 keeps the shape)", f"k = {k}")
    if W.shape[0] % heads != 0:
        raise ArgumentError("W", f"a row count divisible by the H = {heads} heads", f"{W.shape[0]} rows")


@op(
    inputs={
        "W": FloatArray("O", "I"),
        "K": FloatArray("H", "k", "k"),
        "c": FloatArray("H"),
        "s": FloatArray("H"),
        "official": Flag(),
    },
    outputs=("W_t",),
    differentiable=("W", "K", "c", "s"),
    check=_check_conv,
)
def contracon_conv_weight(W, K, c, s, *, official=False):
    r"""ConTraCon's task weight: each head's block of a projection weight convolved with a small kernel.

    ConTraCon learns a new task without a new copy of the attention projections: every
    query, key and value weight of a transformer trained on an earlier task is *re-weighted*
    by a tiny learnable convolution kernel per head (k × k parameters instead of out × in),
    treating the weight matrix as a one-channel image. Only the kernels (and a bias and a
    skip gate in the official code) are stored per task.

    Forward. W (out, in) is split row-wise into H contiguous head blocks ``W_h`` (out/H, in)
    (the official ``mat.view(num_heads, out/H, in)``); each block is cross-correlated with
    its own kernel ``K_h`` (k, k), k odd, PyTorch ``conv2d`` semantics: no kernel flip, one
    input and one output channel, stride 1, dilation 1, ZERO padding p = (k − 1)/2 on every
    side, so the output has the block's shape::

        (W_h ⋆ K_h)[i, j] = Σ_{a,b=0}^{k−1} K_h[a, b] · W_h[i + a − p, j + b − p]   (0 outside W_h)

        official=False:  W_t,h = W_h ⋆ K_h                          (the plain re-weighting)
        official=True:   W_t,h = W_h ⋆ K_h + c_h + σ(s_h) · W_h     (Mtx_fc.tr_apply_kernel_tr)

    with ``c_h`` the conv's scalar bias (``nn.Conv2d`` has ``bias=True``) and ``σ(s_h)`` the
    learnable skip gate (the paper's Figure 2 draws the skip gate beside the convolution).
    official=False is the convolution alone, the bare re-weighting; official=True is the
    released model's (``refimpl deviations contracon_conv_weight``). H = 1 is the whole weight
    as one image. With official=False, ``c`` and ``s`` do not enter the output (their cotangents are 0).

    Backward. Let ``G_h = ∂L/∂W_t,h``. The correlation is linear in each argument:

    1. ``∂(W ⋆ K)[i, j]/∂K[a, b] = W_pad[i + a, j + b]``, so
       ``K̄_h[a, b] = Σ_{i,j} G_h[i, j]·W_pad,h[i + a, j + b]`` — the padded block
       cross-correlated with G ("valid", a k × k result).
    2. ``W_h[u, v]`` feeds output (i, j) = (u − a + p, v − b + p) with weight ``K_h[a, b]``, so
       ``W̄_h[u, v] = Σ_{a,b} K_h[a, b]·G_h[u − a + p, v − b + p]``: G correlated with the
       flipped kernel under the same zero padding (the standard conv2d input gradient).
    3. official=True adds ``c̄_h = Σ_{i,j} G_h[i, j]``, ``s̄_h = σ(s_h)(1 − σ(s_h))·⟨G_h, W_h⟩``
       and the skip term ``σ(s_h)·G_h`` to ``W̄_h``.

    Args:
        W: the frozen base projection weight (out, in) (torch layout), float32/float64; out
            divisible by H.
        K: per-head kernels (H, k, k), k odd (even k is refused: "same" zero padding needs it).
            Official default k = 15 (``auto_run.py --ker_sz``; ``run_model``'s own default is 9).
        c: per-head conv biases (H,) (official ``conv_list[h].bias``); unused if not official.
        s: per-head skip-gate logits (H,) (official ``sk_wt``, shape (4, 1, 1) for its H = 4
            CCT heads); unused if not official.
        official: add the conv bias and the sigmoid skip term as the official code does.

    Returns:
        W_t: the task's weight (out, in), the dtype of W.

    Reference: Roy, Verma, Voonna, Ghosh, Ghosh, Das, *Exemplar-Free Continual Transformer with
    Convolutions*, ICCV 2023, arXiv:2308.11357; official code CVIR/contracon,
    ``src/utils/model_parts.py`` (``Mtx_fc.tr_apply_kernel_tr``, ``set_ker_size``: padding
    ``int((ker_size − 1)/2)``).

    >>> import numpy as np, refimpl
    >>> W = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> K = np.zeros((1, 3, 3)); K[0, 1, 2] = 1.0   # picks the right neighbour
    >>> refimpl.adapters.contracon_conv_weight(W, K, np.zeros(1), np.zeros(1))
    array([[2., 0.],
           [4., 0.]])
    """
    heads = K.shape[0]
    blocks = W.reshape(heads, W.shape[0] // heads, W.shape[1])  # head h = rows [h·P, (h+1)·P)
    out = correlate_same(blocks, K)
    gate = None
    if official:
        gate = sigmoid(s)
        out = out + c[:, None, None] + gate[:, None, None] * blocks
    return out.reshape(W.shape), (blocks, K, gate, W.shape)


@contracon_conv_weight.defvjp
def contracon_conv_weight_backward(residuals, g_W_t):
    blocks, K, gate, shape = residuals
    G = g_W_t.reshape(blocks.shape)
    g_blocks, g_K = correlate_same_vjp(blocks, K, G)
    if gate is None:
        g_c = np.zeros(K.shape[0], dtype=blocks.dtype)
        g_s = np.zeros(K.shape[0], dtype=blocks.dtype)
    else:
        g_c = G.sum(axis=(1, 2))
        g_s = gate * (1 - gate) * np.sum(G * blocks, axis=(1, 2))
        g_blocks += gate[:, None, None] * G
    return g_blocks.reshape(shape), g_K, g_c, g_s


@op(
    inputs={"logits": FloatArray("T", "M", "N", "C"), "official": Flag()},
    outputs=("task", "entropy"),
)
def entropy_task_inference(logits, *, official=False):
    r"""ConTraCon's task-id inference: pick the task whose adapted model is least uncertain.

    Without a task id at test time, ConTraCon runs the test image through every task's
    re-weighted model (each with its own classifier head) on M augmented views and predicts
    the task whose predictions are most confident, i.e. have the lowest entropy. A selection
    rule (an argmin) on model outputs: reference-only, no VJP, no fast backend.

    Forward, for each test sample n and candidate task t, with ``z = logits[t, m, n]`` the
    C logits of task t's model on view m::

        official=False:  H_t = (1/M) Σ_m H(softmax(z_m)),   H(p) = −Σ_k p_k log p_k
                         (the paper's text read literally: mean of per-view entropies;
                         −Σ p log p evaluated as −Σ p·log_softmax(z), exact for p_k → 0)
        official=True:   p = softmax((1/M) Σ_m z_m),   H_t = −Σ_k p_k log(p_k + 1e−4)
                         (auto_run.py ``get_mean_output`` averages the LOGITS over the views,
                         ``check_task`` takes the entropy with +1e−4 inside the log)

        t̂ = argmin_t H_t

    Tie rule: the LOWEST task index among exact ties (``np.argmin``; the official
    ``torch.argmin`` also returns the first minimal index). Official views: M = 16, 6 copies
    of the test-transformed image plus 10 AutoAugment (``CIFAR10Policy``) views (Gaussian
    noise N(0, 1) for the non-RGB 5-datasets tasks) — the caller builds them; logits are inputs.

    Args:
        logits: (T, M, N, C): tasks, augmented views, test samples, classes per task,
            float32/float64.
        official: average the logits before the softmax and add 1e−4 inside the log.

    Returns:
        task: t̂ (N,) int64, the predicted task of each sample.
        entropy: H (N, T), each sample's entropy under every task (the official ``all_entropy``),
            in the dtype of the logits (computed in float64, so the argmin and its ties do not
            depend on the input dtype's rounding).

    Reference: Roy et al., arXiv:2308.11357 (entropic task identification); official code
    CVIR/contracon, ``auto_run.py`` (``check_task``, ``get_mean_output``, ``get_aug_img``).

    >>> import numpy as np, refimpl
    >>> logits = np.zeros((2, 1, 1, 2)); logits[1, 0, 0] = [5.0, 0.0]   # task 1 is confident
    >>> task, entropy = refimpl.adapters.entropy_task_inference(logits)
    >>> task, entropy.round(4)
    (array([1]), array([[0.6931, 0.0402]]))
    """
    z = logits.astype(np.float64)  # float64 throughout: the argmin does not depend on the input dtype
    if official:
        p = softmax(z.mean(axis=1))  # (T, N, C)
        entropy_tn = -np.sum(p * np.log(p + OFFICIAL_LOG_EPS), axis=-1)
    else:
        log_p = log_softmax(z)  # (T, M, N, C)
        entropy_tn = -np.sum(np.exp(log_p) * log_p, axis=-1).mean(axis=1)
    entropy = np.ascontiguousarray(entropy_tn.T)  # (N, T)
    task = np.argmin(entropy, axis=1).astype(np.int64)  # first minimum on ties: the lowest task
    return (task, entropy.astype(logits.dtype)), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
_EXAMPLE_W = np.array([[1.0, 2.0], [3.0, 4.0]])
_EXAMPLE_K = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])  # the right neighbour

known_deviation(
    contracon_conv_weight,
    name="contracon-conv-bias-and-skip-gate",
    source="CVIR/contracon, src/utils/model_parts.py, Mtx_fc.tr_apply_kernel_tr and set_ker_size "
    "(`out[i] = conv_list[i](mat[i]...)`, `out = out + torch.sigmoid(sk_wt) * mat`; "
    "nn.Conv2d with its default bias)",
    official="each head block is W_h ⋆ K_h + c_h + sigmoid(s_h)·W_h: the conv's scalar bias and a learnable "
    "sigmoid skip connection to the base weight are part of the task weight",
    paper="W_t = W ⋆ K_t, the re-weighting as a convolution of the weight alone (the plain form; the paper's "
    "Figure 2 also draws a skip gate)",
    example=Example(
        args=(_EXAMPLE_W, _EXAMPLE_K, np.array([0.5]), np.array([0.0])),
        official={"W_t": [[3.0, 1.5], [6.0, 2.5]]},
        reference={"W_t": [[2.0, 0.0], [4.0, 0.0]]},
        note="H = 1, k = 3, c = 0.5, s = 0 (gate 0.5): official adds 0.5 + 0.5·W",
    ),
    flag={"official": True},
)

known_deviation(
    entropy_task_inference,
    name="contracon-entropy-of-mean-logits",
    source="CVIR/contracon, auto_run.py, get_mean_output (`outputs.mean(dim=0)` over the 16 views) and "
    "check_task (`-torch.sum(sout*torch.log(sout+0.0001),1)`)",
    official="averages the LOGITS over the augmented views, then takes the entropy of their softmax with "
    "1e-4 added inside the log",
    paper="the mean over the views of each view's predictive entropy (the paper's text read literally)",
    example=Example(
        args=(np.array([[[[10.0, 0.0]], [[0.0, 10.0]]], [[[1.0, 0.0]], [[1.0, 0.0]]]]),),
        official={"task": [1]},
        reference={"task": [0]},
        note="task 0's two views are confident and disagree (mean entropy 5e-4, but mean logits [5, 5] give "
        "ln 2); task 1's views agree with p = 0.73 (entropy 0.58)",
    ),
    flag={"official": True},
)
