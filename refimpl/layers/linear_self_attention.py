"""Linear self-attention, its gradient-descent construction and the GD++ layer (Transformers
learn in-context by gradient descent, von Oswald et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, Paper, RealScalar, op

__all__ = ["PAPER", "gd_plus_plus_layer", "linear_self_attention", "lsa_gd_construction"]

PAPER = Paper(
    "Transformers learn in-context by gradient descent",
    arxiv="2212.07677",
    year=2023,
    code="google-research/self-organising-systems",
)


def _check_context(tokens: str):
    def check(arguments) -> None:
        length = arguments[tokens].shape[-2]
        if arguments["num_context"] > length:
            raise ArgumentError(
                "num_context",
                f"at most the number of tokens T = {length} (the first N rows are the context)",
                f"N = {arguments['num_context']}",
            )

    return check


# -- linear self-attention ----------------------------------------------------------------
@op(
    inputs={
        "E": FloatArray("B", "T", "D"),
        "W_Q": FloatArray("Dk", "D"),
        "W_K": FloatArray("Dk", "D"),
        "W_V": FloatArray("Dv", "D"),
        "P": FloatArray("D", "Dv"),
        "num_context": IntScalar(1),
    },
    outputs=("out",),
    differentiable=("E", "W_Q", "W_K", "W_V", "P"),
    check=_check_context("E"),
)
def linear_self_attention(E, W_Q, W_K, W_V, P, *, num_context):
    r"""Single-head linear self-attention (no softmax) with a residual connection.

    Every token reads the context through one (D_v × D_k) matrix ``G = Σ_i v_i k_iᵀ``: with
    no softmax, attention is linear in the values and the queries, so a layer can carry out
    one gradient-descent step on a least-squares problem given in context
    (:func:`lsa_gd_construction` builds those weights).

    Forward, per batch element; tokens are the rows of ``E`` (T, D), the first N rows are the
    context (they give the keys and values), every row is a query::

        Q = E W_Qᵀ            (T, D_k)
        K = E_N W_Kᵀ          (N, D_k)        E_N = E[:N]
        V = E_N W_Vᵀ          (N, D_v)
        G = Vᵀ K = Σ_i v_i k_iᵀ               (D_v, D_k)
        out = E + Q Gᵀ Pᵀ      row j: e_j + P G q_j

    Conventions: no softmax, no 1/√d or 1/N scaling (the paper puts η/N into P), no causal
    mask: every token, the queries after the context included, attends to all N context rows
    and none attends to a query row (the paper's ``e_j ← e_j + P Σ_{i≤N} W_V e_i ⊗ W_K e_i
    W_Q e_j``, eq. 6, with the query token excluded from the keys and values).

    Backward. Let ``Ē = ∂L/∂out`` and ``U = Q Gᵀ`` so that ``out = E + U Pᵀ``::

        P̄ = Ēᵀ U = Ēᵀ Q Gᵀ                     (summed over the batch)
        Ū = Ē P;  U = Q Gᵀ  ⇒  Q̄ = Ū G = Ē P G,  Ḡ = Ūᵀ Q = Pᵀ Ēᵀ Q
        G = Vᵀ K  ⇒  V̄ = K Ḡᵀ,  K̄ = V Ḡ
        W̄_Q = Q̄ᵀ E,  W̄_K = K̄ᵀ E_N,  W̄_V = V̄ᵀ E_N      (summed over the batch)
        Ē_in = Ē + Q̄ W_Q,  and on the context rows also + K̄ W_K + V̄ W_V

    (the residual, then each projection's input cotangent).

    Args:
        E: tokens (B, T, D), float32 or float64.
        W_Q, W_K: query and key projections (D_k, D) (torch layout: ``q = W_Q e``).
        W_V: value projection (D_v, D).
        P: output projection (D, D_v).
        num_context: N, 1 ≤ N ≤ T: rows ``0..N−1`` are the context. No default: the
            split between context and queries is the caller's data.

    Returns:
        out: (B, T, D), the dtype of E.

    Reference: von Oswald et al., *Transformers learn in-context by gradient descent*,
    arXiv:2212.07677, §2 (eq. 6, linear self-attention with the projection P). Conventions
    checked against the official code, google-research/self-organising-systems,
    transformers_learn_icl_by_gd/src/transformer.py ``Transformer.trans_block`` (keys and
    values ``h[:, :-1]``: the query excluded, ``include_query=False``; every token a query;
    ``h + dampening·h_attn`` with ``dampening = 1``; the prediction read as ``−h[:, -1, -1]``)
    and src/attn.py ``MultiHeadAttention`` (without softmax the weights are the raw logits
    ``q·k``: no 1/√d). Its options (several heads, biases, layer norm, ``y_update``) are not
    part of this op.

    >>> import numpy as np, refimpl
    >>> E = np.array([[[1.0, 2.0], [3.0, 0.0]]])  # N = 1: G = v_0 k_0ᵀ = e_0 e_0ᵀ, P = I
    >>> I = np.eye(2)
    >>> refimpl.layers.linear_self_attention(E, I, I, I, I, num_context=1)[0]
    array([[ 6., 12.],
           [ 6.,  6.]])
    """
    context = E[:, :num_context]
    Q = E @ W_Q.T
    K = context @ W_K.T
    V = context @ W_V.T
    G = np.swapaxes(V, -1, -2) @ K  # (B, D_v, D_k)
    U = Q @ np.swapaxes(G, -1, -2)  # row j: G q_j
    out = E + U @ P.T
    return out, (E, W_Q, W_K, W_V, P, Q, K, V, G, U, num_context)


@linear_self_attention.defvjp
def linear_self_attention_backward(residuals, g_out):
    E, W_Q, W_K, W_V, P, Q, K, V, G, U, num_context = residuals
    context = E[:, :num_context]
    g_P = np.einsum("btd,btv->dv", g_out, U)
    g_U = g_out @ P
    g_Q = g_U @ G
    g_G = np.swapaxes(g_U, -1, -2) @ Q  # (B, D_v, D_k)
    g_V = K @ np.swapaxes(g_G, -1, -2)
    g_K = V @ g_G
    g_W_Q = np.einsum("btk,btd->kd", g_Q, E)
    g_W_K = np.einsum("bnk,bnd->kd", g_K, context)
    g_W_V = np.einsum("bnv,bnd->vd", g_V, context)
    g_E = g_out + g_Q @ W_Q
    g_E[:, :num_context] += g_K @ W_K + g_V @ W_V
    return g_E, g_W_Q, g_W_K, g_W_V, g_P


# -- the construction: one GD step -----------------------------------------------------------
@op(
    inputs={
        "W_0": FloatArray("Dy", "Dx"),
        "eta": RealScalar(0, low_open=True),
        "num_context": IntScalar(1),
    },
    outputs=("W_Q", "W_K", "W_V", "P"),
)
def lsa_gd_construction(W_0, *, eta, num_context):
    r"""The weights that make :func:`linear_self_attention` one gradient-descent step.

    Tokens are ``e_i = (x_i, y_i)`` (D = D_x + D_y), the query ``(x_q, ·)``. For the linear
    regression loss ``L(W) = 1/(2N) Σ_i ‖W x_i − y_i‖²`` and a start ``W_0``, the paper's
    Proposition 1 gives weights with which the layer changes every token's y-part by
    ``−ΔW x_j``, ``ΔW = −η ∇L(W_0) = −(η/N) Σ_i (W_0 x_i − y_i) x_iᵀ``, and leaves the x-part
    unchanged::

        W_K = W_Q = [[I_x, 0], [0, 0]]        (D, D): k_i = (x_i, 0), q_j = (x_j, 0)
        W_V = [[0, 0], [W_0, −I_y]]           (D, D): v_i = (0, W_0 x_i − y_i)
        P   = (η/N) I_D

    Check: ``G = Σ_i v_i k_iᵀ = [[0, 0], [Σ_i (W_0 x_i − y_i) x_iᵀ, 0]]``, so
    ``P G q_j = (0, (η/N) Σ_i (W_0 x_i − y_i) x_iᵀ x_j) = (0, η ∇L(W_0) x_j) = (0, −ΔW x_j)``.
    A query token entered as ``(x_q, −W_0 x_q)`` leaves with y-slot ``−(W_0 + ΔW) x_q``, minus
    the prediction of the model after one GD step (with ``W_0 = 0``: the query ``(x_q, 0)``
    and the y-slot ``−ΔW x_q``; the paper reads the prediction with this sign).

    A one-off construction, not differentiable: reference-only (no fast backend).

    Args:
        W_0: the starting weights (D_y, D_x); zeros for the paper's ``W_0 = 0``.
        eta: the learning rate η > 0.
        num_context: N, the number of context tokens the layer sums over (P = η/N · I).

    Returns:
        W_Q, W_K, W_V, P: each (D, D), D = D_x + D_y, the dtype of W_0; the arguments of
        :func:`linear_self_attention` in its order.

    Reference: von Oswald et al., *Transformers learn in-context by gradient descent*,
    arXiv:2212.07677, §2 Proposition 1 (and its proof, Appendix A.1).

    >>> import numpy as np, refimpl
    >>> W_Q, W_K, W_V, P = refimpl.layers.lsa_gd_construction(np.array([[2.0]]), eta=0.5, num_context=4)
    >>> W_V
    array([[ 0.,  0.],
           [ 2., -1.]])
    >>> P
    array([[0.125, 0.   ],
           [0.   , 0.125]])
    """
    d_y, d_x = W_0.shape
    dim = d_x + d_y
    W_Q = np.zeros((dim, dim), dtype=W_0.dtype)
    W_Q[:d_x, :d_x] = np.eye(d_x)
    W_K = W_Q.copy()
    W_V = np.zeros((dim, dim), dtype=W_0.dtype)
    W_V[d_x:, :d_x] = W_0
    W_V[d_x:, d_x:] = -np.eye(d_y)
    P = (eta / num_context) * np.eye(dim, dtype=W_0.dtype)
    return (W_Q, W_K, W_V, P), None


# -- GD++ ---------------------------------------------------------------------------------
@op(
    inputs={"X": FloatArray("B", "T", "D"), "gamma": RealScalar(), "num_context": IntScalar(1)},
    outputs=("out",),
    differentiable=("X",),
    check=_check_context("X"),
)
def gd_plus_plus_layer(X, *, gamma, num_context):
    r"""GD++: the curvature correction a trained linear self-attention layer applies to the inputs.

    Trained deep linear transformers do more than plain GD: their first layers transform the
    inputs by ``x ← (I − γ C) x`` with C the context's second-moment matrix, which shrinks
    the large-curvature directions and improves the conditioning of the regression problem the
    later GD layers solve (a preconditioner ``(I − γC)²`` on one GD step).

    Forward, per batch element (rows of X (T, D) are the tokens' x-parts, the first N the
    context; every token is transformed, the queries included)::

        C   = (1/N) X_Nᵀ X_N = (1/N) Σ_{i<N} x_i x_iᵀ        (D, D), symmetric
        out = X − γ X C          row j: x_j − γ (1/N) Σ_i x_i x_iᵀ x_j

    Backward. Let ``Ȳ = ∂L/∂out``. Through the direct path ``X̄ = Ȳ − γ Ȳ Cᵀ = Ȳ − γ Ȳ C``.
    Through C: ``C̄ = −γ Xᵀ Ȳ`` (D, D), and ``C = (1/N) Σ_i x_i x_iᵀ`` gives
    ``x̄_i += (1/N)(C̄ + C̄ᵀ) x_i`` for the context rows::

        C̄   = −γ Xᵀ Ȳ
        X̄   = Ȳ − γ Ȳ C,   X̄_N += (1/N) X_N (C̄ + C̄ᵀ)

    Args:
        X: the tokens' x-parts (B, T, D), float32 or float64.
        gamma: γ, a learned scalar (no default: the paper trains it).
        num_context: N, 1 ≤ N ≤ T.

    Returns:
        out: (B, T, D), the dtype of X.

    Reference: von Oswald et al., *Transformers learn in-context by gradient descent*,
    arXiv:2212.07677, §4 (GD++: ``x_j ← x_j − γ X Xᵀ x_j`` with the 1/N of the context mean).

    >>> import numpy as np, refimpl
    >>> X = np.array([[[2.0, 0.0], [1.0, 1.0]]])  # N = 1: C = diag(4, 0)
    >>> refimpl.layers.gd_plus_plus_layer(X, gamma=0.25, num_context=1)[0]
    array([[0., 0.],
           [0., 1.]])
    """
    context = X[:, :num_context]
    C = np.swapaxes(context, -1, -2) @ context / num_context
    out = X - gamma * (X @ C)
    return out, (X, C, gamma, num_context)


@gd_plus_plus_layer.defvjp
def gd_plus_plus_layer_backward(residuals, g_out):
    X, C, gamma, num_context = residuals
    g_C = -gamma * (np.swapaxes(X, -1, -2) @ g_out)
    g_X = g_out - gamma * (g_out @ C)
    g_X[:, :num_context] += X[:, :num_context] @ (g_C + np.swapaxes(g_C, -1, -2)) / num_context
    return (g_X,)
