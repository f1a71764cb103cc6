"""The LoRA-style linear layer shared by PiSSA, CorDA and other low-rank adapters (PiSSA paper)."""

from __future__ import annotations

from ..authoring import FloatArray, RealScalar, op
from .pissa import PAPER  # noqa: F401 - the paper of this module's op (read by @op)

__all__ = ["lora_linear"]


@op(
    inputs={
        "x": FloatArray("...", "I"),
        "W": FloatArray("O", "I"),
        "A": FloatArray("R", "I"),
        "B": FloatArray("O", "R"),
        "bias": FloatArray("O", optional=True),
        "scale": RealScalar(),
    },
    outputs=("y",),
    differentiable=("x", "A", "B"),
)
def lora_linear(x, W, A, B, bias=None, *, scale):
    r"""A frozen linear layer plus a trainable low-rank branch: ``y = x Wᵀ + s·(x Aᵀ) Bᵀ + b``.

    LoRA freezes the weight ``W`` and learns its update as a product ``s·B A`` of two thin
    factors (``A`` maps the input down to r dimensions, ``B`` maps back up). The branch is
    evaluated as ``(x Aᵀ) Bᵀ`` — two thin products through the r-dimensional bottleneck —
    never by forming the (out, in) matrix ``B A``. With ``B = 0`` (standard LoRA
    initialization) the layer is the base layer; after ``pissa_init`` the frozen weight is
    the residual ``W_res`` and the layer starts out equal to the original one.

    Semantics of huggingface/peft's LoRA ``Linear`` layer (torch layout, no dropout):
    ``W`` is (out, in) and ``y = x Wᵀ``; a layer that stores its weight transposed (Conv1D,
    ``fan_in_fan_out``) must transpose it before the call.

    Forward, for every row x of the input (all leading dimensions are rows)::

        h = x Aᵀ                  (r,)   the bottleneck activation, kept as a residual
        y = x Wᵀ + s · h Bᵀ + b   (out,)

    Backward. Let ``G = ∂L/∂y`` (rows g). W and b are frozen and get no cotangent. The
    forward is a sum of two paths from x, one through W and one through h:

    1. ``y`` depends on ``B`` only through ``s·h Bᵀ``: ``∂y_o/∂B_ok = s·h_k``, so
       ``B̄_ok = s·Σ_rows g_o h_k``, i.e. ``B̄ = s·Gᵀ H`` (out, r), with H the stacked h.
    2. ``y`` depends on ``h`` through ``s·h Bᵀ``: ``∂y_o/∂h_k = s·B_ok``, so the cotangent of
       ``h`` is ``h̄ = s · g B`` (r,) per row.
    3. ``h = x Aᵀ`` gives ``∂h_k/∂A_kj = x_j``: ``Ā_kj = Σ_rows h̄_k x_j``, i.e.
       ``Ā = H̄ᵀ X = s·(G B)ᵀ X`` (r, in).
    4. ``x`` reaches ``y`` directly (``∂y_o/∂x_j = W_oj``) and through ``h``
       (``∂h_k/∂x_j = A_kj``): ``x̄ = g W + h̄ A = g W + s·(g B) A``.

    So ``x̄ = G W + s·(G B) A``, ``Ā = s·(G B)ᵀ X``, ``B̄ = s·Gᵀ H``: the standard VJP. The
    thin product ``G B`` is computed once and shared by x̄ and Ā; ``H`` is the forward's
    residual (never recomputed).

    Args:
        x: input (..., in), float32 or float64; any number of leading (batch) dimensions,
            including none.
        W: frozen weight (out, in) (PiSSA's ``W_res``).
        A: down-projection (r, in) (PEFT's ``lora_A.weight``).
        B: up-projection (out, r) (PEFT's ``lora_B.weight``, initialized to 0 by plain LoRA).
        bias: frozen bias (out,), or None.
        scale: ``s``, a finite real, required (PEFT: ``lora_alpha / r``, or
            ``lora_alpha / √r`` with rsLoRA — the caller chooses; no default is assumed).

    Returns:
        y: (..., out), the dtype of x. Computed in the input dtype.

    Reference: Meng, Wang and Zhang, *PiSSA: Principal Singular Values and Singular Vectors
    Adaptation of Large Language Models*, arXiv:2404.02948 (layer semantics of
    huggingface/peft's LoRA layer).

    >>> import numpy as np, refimpl
    >>> x = np.array([[1.0, 2.0]])
    >>> W, A, B = np.eye(2), np.array([[3.0, -1.0]]), np.array([[2.0], [1.0]])
    >>> refimpl.adapters.lora_linear(x, W, A, B, scale=0.5)
    array([[2. , 2.5]])
    """
    scale = float(scale)  # a Python float: it never promotes float32 arrays to float64
    h = x @ A.T
    y = x @ W.T + scale * (h @ B.T)
    if bias is not None:
        y = y + bias
    return y, (x, W, A, B, h, scale)


@lora_linear.defvjp
def lora_linear_backward(residuals, g_y):
    x, W, A, B, h, scale = residuals
    # every leading dimension is a row: flatten to (T, ·) for the sums over rows
    g_rows = g_y.reshape(-1, W.shape[0])
    x_rows = x.reshape(-1, W.shape[1])
    h_rows = h.reshape(-1, A.shape[0])
    g_h = scale * (g_rows @ B)  # h̄ = s·G B, (T, r)
    g_x = g_rows @ W + g_h @ A
    g_A = g_h.T @ x_rows
    g_B = scale * (g_rows.T @ h_rows)
    return g_x.reshape(x.shape), g_A, g_B
