"""Learned proximal networks: the input-convex potential ψ, its gradient map f = ∇ψ and the
weight clip that keeps ψ convex (What's in a Prior? Learned Proximal Networks for Inverse
Problems)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, RealScalar, op, sigmoid, sigmoid_and_slope, softplus
from ..losses.proximal_matching import PAPER

__all__ = ["PAPER", "lpn_potential", "lpn_prox", "lpn_weight_clip"]

_NETWORK_INPUTS = {
    "y": FloatArray("B", "D"),
    "A": FloatArray("L", "H", "D"),
    "b": FloatArray("L", "H"),
    "W": FloatArray("M", "H", "H"),
    "w": FloatArray("H"),
    "alpha": RealScalar(0),
    "beta": RealScalar(0, low_open=True),
}


def _check_depth(args):
    """``W`` holds the L − 1 hidden-to-hidden maps between the L layers."""
    layers, hidden_maps = args["A"].shape[0], args["W"].shape[0]
    if hidden_maps != layers - 1:
        raise ArgumentError(
            "W",
            f"shape (L - 1, H, H) = ({layers - 1}, H, H) (L = {layers} from 'A')",
            f"shape {args['W'].shape}",
        )


def _network_forward(y, A, b, W, beta):
    """Pre-activations ``a_l`` and activations ``z_l = softplus_β(a_l)`` of the L layers."""
    pre, z = [], []
    for layer in range(A.shape[0]):
        a = y @ A[layer].T + b[layer]
        if layer > 0:
            a = a + z[-1] @ W[layer - 1].T
        pre.append(a)
        z.append(softplus(beta * a) / beta)  # (1/β)·log(1 + e^{βa}) without overflow
    return pre, z


def _network_gradient(y, A, W, w, pre, alpha, beta):
    """One reverse pass through ψ with seed 1: slopes ``s_l``, signals ``δ_l``, ``ā_l`` and ``f``."""
    layers = A.shape[0]
    slopes = [sigmoid(beta * a) for a in pre]  # σ'(a) = sigmoid(βa)
    deltas, a_bars = [None] * layers, [None] * layers
    delta = np.broadcast_to(w, pre[-1].shape)  # δ_L = ∂ψ/∂z_L = w on every row
    f = 2 * alpha * y
    for layer in range(layers - 1, -1, -1):
        deltas[layer] = delta
        a_bar = slopes[layer] * delta
        a_bars[layer] = a_bar
        f = f + a_bar @ A[layer]
        if layer > 0:
            delta = a_bar @ W[layer - 1]
    return slopes, deltas, a_bars, f.astype(y.dtype)


@op(
    inputs=_NETWORK_INPUTS,
    outputs=("psi",),
    differentiable=("y", "A", "b", "W", "w"),
    check=_check_depth,
    allow_empty=("M",),
)
def lpn_potential(y, A, b, W, w, *, alpha=0.0, beta=1.0):
    r"""The input-convex potential ψ(y) of a learned proximal network, one value per row.

    An LPN is the gradient of a convex function: ψ is an input-convex neural network (ICNN),
    convex in y because its hidden-to-hidden weights are nonnegative and its activation is
    convex and non-decreasing. Every layer sees the input y through its own unconstrained
    map ``A_l`` (the official ``res`` layers). The proximal map is ``lpn_prox = ∇ψ``.

    Forward, per row y ∈ R^D, L layers of width H (σ = softplus with sharpness β)::

        σ(a)    = (1/β)·log(1 + e^{βa})       (softplus(βa)/β, evaluated without overflow)
        a_1     = A_1 y + b_1,                 z_1 = σ(a_1)
        a_{l+1} = W_l z_l + A_{l+1} y + b_{l+1}, z_{l+1} = σ(a_{l+1})
        ψ(y)    = wᵀ z_L + α‖y‖²

    ψ is convex in y when every ``W_l ≥ 0`` and ``w ≥ 0`` (``lpn_weight_clip``); the op
    itself does not require it (gradients through any weights are well defined).

    Backward. With ``g = ∂L/∂ψ`` (B,), the cotangent of z_L is ``δ_L = g wᵀ``; going down the
    layers, ``ā_l = δ_l ⊙ σ'(a_l)`` with ``σ'(a) = sigmoid(βa)`` and
    ``δ_{l−1} = ā_l W_{l−1}`` (through ``a_l = W_{l−1} z_{l−1} + ...``). Collecting each use::

        ȳ   = Σ_l ā_l A_l + 2α g ⊙ y
        Ā_l = ā_lᵀ y,   b̄_l = Σ_rows ā_l,   W̄_{l−1} = ā_lᵀ z_{l−1},   w̄ = z_Lᵀ g

    Args:
        y: inputs (B, D).
        A: input maps (L, H, D), ``A[l]`` feeds y into layer l (torch layout ``y A_lᵀ``).
        b: biases (L, H). The official networks have no bias on layer 1 (pass ``b[0] = 0``).
        W: hidden-to-hidden maps (L − 1, H, H), ``W[l]`` maps z_{l+1} into layer l + 2
           (zero-size when L = 1).
        w: output weights (H,).
        alpha: strong-convexity weight α ≥ 0 (official ``LPN(alpha=0.0)``,
           ``lpn/networks/lpn_mnist.py``).
        beta: softplus sharpness β > 0 (official ``LPN(beta=1)``, ``nn.Softplus(beta=beta)``).
           PyTorch switches to the identity where βa > 20; here softplus is exact everywhere.

    Returns:
        psi: (B,).

    Reference: Fang, Buchanan and Sulam, *What's in a Prior? Learned Proximal Networks for
    Inverse Problems*, arXiv:2310.14344 (ICLR 2024); official code
    ZhenghanFang/learned-proximal-networks, ``LPN.scalar`` in ``exps/laplacian/network.py``
    and ``lpn/networks/lpn_mnist.py`` (the latter adds ``alpha·‖y‖²``). The 1-D network there
    also adds an affine term ``aᵀy + c`` to ψ (its gradient is a constant ``a``); it is left
    out here (ψ ends in ``wᵀ z_L``, as in ``lpn_mnist.py``).

    >>> import numpy as np, refimpl
    >>> y = np.array([[0.0]]); A = np.array([[[1.0]]]); b = np.zeros((1, 1))
    >>> round(float(refimpl.layers.lpn_potential(y, A, b, np.zeros((0, 1, 1)), np.ones(1))[0]), 6)
    0.693147
    """
    pre, z = _network_forward(y, A, b, W, beta)
    psi = z[-1] @ w + alpha * np.sum(y * y, axis=1)
    return psi.astype(y.dtype), (y, A, W, w, pre, z, alpha, beta)


@lpn_potential.defvjp
def lpn_potential_backward(residuals, g_psi):
    y, A, W, w, pre, z, alpha, beta = residuals
    layers = A.shape[0]
    g_A, g_b, g_W = np.zeros_like(A), np.zeros((layers, A.shape[1]), dtype=A.dtype), np.zeros_like(W)
    delta = g_psi[:, None] * w  # δ_L = g wᵀ
    g_y = 2 * alpha * g_psi[:, None] * y
    for layer in range(layers - 1, -1, -1):
        a_bar = delta * sigmoid(beta * pre[layer])
        g_A[layer] = a_bar.T @ y
        g_b[layer] = a_bar.sum(axis=0)
        g_y = g_y + a_bar @ A[layer]
        if layer > 0:
            g_W[layer - 1] = a_bar.T @ z[layer - 1]
            delta = a_bar @ W[layer - 1]
    g_w = z[-1].T @ g_psi
    return g_y.astype(y.dtype), g_A, g_b, g_W, g_w.astype(y.dtype)


@op(
    inputs=_NETWORK_INPUTS,
    outputs=("f",),
    differentiable=("y", "A", "b", "W", "w"),
    check=_check_depth,
    allow_empty=("M",),
)
def lpn_prox(y, A, b, W, w, *, alpha=0.0, beta=1.0):
    r"""The learned proximal network ``f(y) = ∇_y ψ(y)``: the gradient of ``lpn_potential``.

    Because ψ is convex (nonnegative ``W``, ``w``), f is the gradient of a convex function and
    hence, by the paper's characterization, the proximal operator of some (learned) prior:
    ``f = prox_R`` with ``R`` recoverable from ψ. The official ``LPN.forward`` computes f with
    autograd; here the one reverse pass is written out, and its VJP is the Hessian-vector
    product of ψ, derived by hand.

    Forward (the backward pass of ``lpn_potential`` with seed ``∂L/∂ψ = 1``; σ as there)::

        a_l, z_l as in lpn_potential;   s_l = σ'(a_l) = sigmoid(β a_l)
        δ_L = w (every row),   ā_l = s_l ⊙ δ_l,   δ_{l−1} = ā_l W_{l−1}
        f(y) = Σ_l ā_l A_l + 2α y

    Backward (reverse mode through the computation above; it equals forward-over-reverse).
    Let ``v = ∂L/∂f`` (B, D). Going back through the reverse pass in *forward* layer order:
    the cotangent of ā_l is ``ȧ_l = v A_lᵀ + ρ_{l−1} W_{l−1}ᵀ`` (ā_l enters f through A_l and
    δ_{l−1} through W_{l−1}), and the cotangent of δ_l is ``ρ_l = s_l ⊙ ȧ_l``. These are exactly
    the tangents of a_l and z_l along v (a forward-mode pass). Through ā_l = s_l ⊙ δ_l the slope
    gets ``ȧ_l ⊙ δ_l``, and ``s_l = σ'(a_l)`` passes ``q_l = ȧ_l ⊙ δ_l ⊙ σ''(a_l)`` to a_l, with
    ``σ''(a) = β·sigmoid(βa)(1 − sigmoid(βa))``. Then back through the forward pass of ψ, in
    reverse layer order (z_L itself does not enter f)::

        c_L = q_L,   c_l = q_l + s_l ⊙ (c_{l+1} W_l)          (cotangent of a_l)
        ȳ   = 2α v + Σ_l c_l A_l                              (= ∇²ψ · v per row: symmetric)
        Ā_l = ā_lᵀ v + c_lᵀ y,   b̄_l = Σ_rows c_l
        W̄_l = ā_{l+1}ᵀ ρ_l + c_{l+1}ᵀ z_l,   w̄ = Σ_rows ρ_L

    Args: as ``lpn_potential`` (same defaults and sources).

    Returns:
        f: (B, D), the denoised / proximal point of each row.

    Reference: Fang, Buchanan and Sulam, arXiv:2310.14344; official ``LPN.forward``
    (``torch.autograd.grad(ψ.sum(), x, create_graph=True)``), ``exps/laplacian/network.py``.

    >>> import numpy as np, refimpl
    >>> y = np.array([[0.0]]); A = np.array([[[1.0]]]); b = np.zeros((1, 1))
    >>> refimpl.layers.lpn_prox(y, A, b, np.zeros((0, 1, 1)), np.ones(1), alpha=0.5)
    array([[0.5]])
    """
    pre, z = _network_forward(y, A, b, W, beta)
    slopes, deltas, a_bars, f = _network_gradient(y, A, W, w, pre, alpha, beta)
    return f, (y, A, W, pre, z, slopes, deltas, a_bars, alpha, beta)


@lpn_prox.defvjp
def lpn_prox_backward(residuals, g_f):
    y, A, W, pre, z, slopes, deltas, a_bars, alpha, beta = residuals
    layers = A.shape[0]
    g_A, g_b, g_W = np.zeros_like(A), np.zeros((layers, A.shape[1]), dtype=A.dtype), np.zeros_like(W)
    # tangent pass along v = g_f: ȧ_l (cotangent of ā_l) and ρ_l (cotangent of δ_l)
    curvature = []
    rho = None
    for layer in range(layers):
        a_dot = g_f @ A[layer].T
        if layer > 0:
            a_dot = a_dot + rho @ W[layer - 1].T
            g_W[layer - 1] = a_bars[layer].T @ rho
        rho = slopes[layer] * a_dot
        g_A[layer] = a_bars[layer].T @ g_f
        _, slope_of_sigmoid = sigmoid_and_slope(beta * pre[layer])
        curvature.append(a_dot * deltas[layer] * (beta * slope_of_sigmoid))  # q_l
    g_w = rho.sum(axis=0)
    # back through ψ's forward pass: c_l, the cotangent of a_l
    g_y = 2 * alpha * g_f
    c = None
    for layer in range(layers - 1, -1, -1):
        c = curvature[layer] if c is None else curvature[layer] + slopes[layer] * (c @ W[layer])
        g_y = g_y + c @ A[layer]
        g_A[layer] += c.T @ y
        g_b[layer] = c.sum(axis=0)
        if layer > 0:
            g_W[layer - 1] += c.T @ z[layer - 1]
    return g_y.astype(y.dtype), g_A, g_b, g_W, g_w.astype(y.dtype)


@op(
    inputs={"W": FloatArray("M", "H", "H"), "w": FloatArray("H")},
    outputs=("W_clipped", "w_clipped"),
    allow_empty=("M",),
)
def lpn_weight_clip(W, w):
    r"""Project an LPN's constrained weights onto the nonnegative orthant (after each step).

    ψ (``lpn_potential``) is convex in y when the hidden-to-hidden maps ``W_l`` and the output
    weights ``w`` are nonnegative; training keeps them so by clamping after every optimizer
    step. The official ``LPN.wclip`` clamps ``self.lin[1:]``: every weight except the first
    layer's input map, i.e. the ``W_l`` and the output ``w`` here; the input maps ``A_l`` and
    biases stay free::

        W_l ← max(W_l, 0),   w ← max(w, 0)      (elementwise; the Euclidean projection)

    Not differentiable (a projection applied outside the gradient); reference-only: one
    elementwise ``maximum`` per tensor, already at memory speed in NumPy.

    Args:
        W: hidden-to-hidden maps (L − 1, H, H) (zero-size when L = 1).
        w: output weights (H,).

    Returns:
        W_clipped, w_clipped: the clamped copies (new arrays; the inputs are not modified).

    Reference: Fang, Buchanan and Sulam, arXiv:2310.14344; official ``LPN.wclip``
    (``core.weight.data.clamp_(0)`` for ``core in self.lin[1:]``), ``exps/laplacian/network.py``.

    >>> import numpy as np, refimpl
    >>> refimpl.layers.lpn_weight_clip(np.array([[[-1.0, 2.0], [0.5, -0.0]]]), np.array([-3.0, 4.0]))[1]
    array([0., 4.])
    """
    return (np.maximum(W, 0), np.maximum(w, 0)), None
