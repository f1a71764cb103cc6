"""The Self-Tuning Networks best-response layer (Self-Tuning Networks: Bilevel Optimization of
Hyperparameters using Structured Best-Response Functions)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, op

__all__ = ["PAPER", "stn_hyperlinear"]

PAPER = Paper(
    "Self-Tuning Networks: Bilevel Optimization of Hyperparameters using Structured Best-Response Functions",
    arxiv="1903.03088",
    year=2019,
    code="asteroidhouse/self-tuning-networks",
)


def _check_gate_map(args):
    """``U`` stacks the weight gates and the bias gates: 2·O rows."""
    out_features = args["W"].shape[0]
    if args["U"].shape[0] != 2 * out_features:
        raise ArgumentError(
            "U", f"shape (2·O, K) = ({2 * out_features}, K) (O from 'W')", f"shape {args['U'].shape}"
        )


@op(
    inputs={
        "x": FloatArray("B", "I"),
        "h": FloatArray("B", "K"),
        "W": FloatArray("O", "I"),
        "b": FloatArray("O"),
        "W_h": FloatArray("O", "I"),
        "b_h": FloatArray("O"),
        "U": FloatArray("O2", "K"),
        "s": FloatArray(1),
    },
    outputs=("out",),
    differentiable=("x", "h", "W", "b", "W_h", "b_h", "U", "s"),
    check=_check_gate_map,
)
def stn_hyperlinear(x, h, W, b, W_h, b_h, U, s):
    r"""A linear layer whose weights respond to hyperparameters: the STN best-response layer.

    STNs approximate the best response ``w*(λ)`` of the weights to the hyperparameters λ by
    an affine map in a scaled form of λ, structured so that each layer costs about twice a
    linear layer: the elementary weights ``W, b`` plus a second linear map ``W_h, b_h`` whose
    output units are gated per example by ``σ = h Uᵀ``, a linear function of the
    (per-example) hyperparameter tensor ``h``. No bias on the gates.

    Forward (torch layout, ``x Wᵀ``; ``U = [U_w; U_b]`` split by rows into two (O, K) halves)::

        σ_w = h U_wᵀ,   σ_b = h U_bᵀ                                  (B, O) each
        out = s·(x Wᵀ + b) + σ_w ⊙ (x W_hᵀ) + σ_b ⊙ b_h

    Backward. With ``G = ∂L/∂out`` (B, O), the three terms are linear in each argument::

        W̄   = s Gᵀ x,        b̄   = s Σ_rows G,       s̄ = Σ G ⊙ (x Wᵀ + b)
        W̄_h = (G ⊙ σ_w)ᵀ x,  b̄_h = Σ_rows G ⊙ σ_b
        σ̄   = [G ⊙ (x W_hᵀ), G ⊙ b_h]       (B, 2O), the cotangent of σ = h Uᵀ
        Ū   = σ̄ᵀ h,          h̄ = σ̄ U
        x̄   = s G W + (G ⊙ σ_w) W_h

    Args:
        x: inputs (B, I).
        h: hyperparameter tensor (B, K), one row per example (the official ``htensor``).
        W, W_h: elementary and hypernet weights (O, I).
        b, b_h: elementary and hypernet biases (O,).
        U: gate map (2·O, K): rows ``:O`` gate the weights, rows ``O:`` the bias
           (the official ``htensor_to_scalars``, ``nn.Linear(K, 2·O, bias=False)``).
        s: the elementary scale (1,) (official ``elem_scalar``, initialized to 1).

    Returns:
        out: (B, O).

    Initialization (official ``init_params``, not part of the op): W, W_h, b, b_h
    uniform(±1/√I), U ~ N(0, 0.01²), s = 1. The perturbed-hyperparameter outer loop with its
    entropy term is a training algorithm, not part of the op.

    Reference: MacKay, Vicol, Lorraine, Duvenaud and Grosse, *Self-Tuning Networks*,
    arXiv:1903.03088 (ICLR 2019), §4.2; official ``HyperLinear.forward``,
    ``cnn/hypermodels/hyperlinear.py``.

    >>> import numpy as np, refimpl
    >>> x, h = np.array([[1.0, 2.0]]), np.array([[3.0]])
    >>> W, b, W_h, b_h = np.array([[1.0, 1.0]]), np.array([0.5]), np.array([[1.0, 0.0]]), np.array([2.0])
    >>> U = np.array([[1.0], [-1.0]])   # σ_w = 3, σ_b = −3
    >>> refimpl.layers.stn_hyperlinear(x, h, W, b, W_h, b_h, U, np.array([2.0]))
    array([[4.]])
    """
    out_features = W.shape[0]
    linear = x @ W.T + b
    hidden = x @ W_h.T
    gates = h @ U.T
    gate_w, gate_b = gates[:, :out_features], gates[:, out_features:]
    out = s * linear + gate_w * hidden + gate_b * b_h
    return out, (x, h, W, W_h, b_h, U, s, linear, hidden, gate_w, gate_b)


@stn_hyperlinear.defvjp
def stn_hyperlinear_backward(residuals, g_out):
    x, h, W, W_h, b_h, U, s, linear, hidden, gate_w, gate_b = residuals
    g_gate_w = g_out * gate_w
    g_gates = np.concatenate([g_out * hidden, g_out * b_h], axis=1)
    g_x = s * (g_out @ W) + g_gate_w @ W_h
    g_h = g_gates @ U
    g_W = s * (g_out.T @ x)
    g_b = s * g_out.sum(axis=0)
    g_W_h = g_gate_w.T @ x
    g_b_h = (g_out * gate_b).sum(axis=0)
    g_U = g_gates.T @ h
    g_s = np.sum(g_out * linear, keepdims=True).reshape(1)
    return g_x, g_h, g_W, g_b, g_W_h, g_b_h, g_U, g_s
