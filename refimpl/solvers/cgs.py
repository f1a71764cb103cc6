"""Convergent Graph Solvers: the contractive transition matrix and its fixed point
(Convergent Graph Solvers, Park et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = ["PAPER", "cgs_fixed_point", "cgs_transition_matrix"]

PAPER = Paper("Convergent Graph Solvers", arxiv="2106.01680", year=2022, code="Junyoungpark/CGS")


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


# -- the transition matrix ----------------------------------------------------------------------------
# the dense output's entry count is capped here: indexable with int32 (as CUDA kernels and the
# official dense torch.zeros((H, n, n)) need), and refused before any allocation is tried
MAX_DENSE_ENTRIES = 2**31 - 1


def _check_graph(arguments) -> None:
    src, dst = _host(arguments["src"]), _host(arguments["dst"])
    num_nodes = int(arguments["num_nodes"])
    heads = _host(arguments["edge_logits"]).shape[1]
    if heads * num_nodes * num_nodes > MAX_DENSE_ENTRIES:
        largest = int(np.sqrt(MAX_DENSE_ENTRIES / heads))
        raise ArgumentError(
            "num_nodes",
            f"a dense (H, n, n) output of at most 2^31 − 1 entries (n <= {largest} for H = {heads})",
            f"num_nodes = {num_nodes}",
        )
    for name, index in (("src", src), ("dst", dst)):
        if index.size and int(index.max()) >= num_nodes:
            raise ArgumentError(
                name, f"node indices in [0, num_nodes = {num_nodes})", f"max {int(index.max())}"
            )
    pairs = src.astype(np.int64) * num_nodes + dst.astype(np.int64)
    if np.unique(pairs).size != pairs.size:
        raise ArgumentError(
            "src/dst", "a graph without duplicate edges (each (src, dst) pair once)", "a repeated edge"
        )


def segment_softmax(logits, src, num_nodes):
    """Softmax of the (E, H) logits over the edges leaving each source node (DGL's
    ``edge_softmax(norm_by='src')``), each segment's max subtracted first: exp cannot overflow."""
    largest = np.full((num_nodes, logits.shape[1]), -np.inf, dtype=logits.dtype)
    np.maximum.at(largest, src, logits)
    e = np.exp(logits - largest[src])
    sums = np.zeros_like(largest)
    np.add.at(sums, src, e)
    return e / sums[src]


@op(
    inputs={
        "edge_logits": FloatArray("E", "H"),
        "src": IntArray("E", low=0),
        "dst": IntArray("E", low=0),
        "num_nodes": IntScalar(1),
        "normalization": OneOf("degree", "softmax"),
    },
    outputs=("A",),
    differentiable=("edge_logits",),
    check=_check_graph,
)
def cgs_transition_matrix(edge_logits, src, dst, *, num_nodes, normalization="degree"):
    r"""CGS's per-head transition matrix from edge logits: every row sums to at most 1.

    CGS solves ``z = γAz + b`` on the input graph with ``γ < 1``; building A so that each row
    sums to at most 1 makes ``‖γA‖_∞ ≤ γ < 1``, a contraction for any graph, so the fixed point
    exists, is unique and the iteration converges from any start. The encoder emits one logit
    per edge and head; the default clips it to [0, 1] and divides by the source's out-degree.

    Forward, for each edge e = (s → t) and head h, with ``deg(s)`` the out-degree of s::

        degree (official default):  A[h, s, t] = clip(ℓ[e, h], 0, 1) / deg(s)
        softmax:                    A[h, s, t] = exp(ℓ[e, h]) / Σ_{e' = (s → ·)} exp(ℓ[e', h])

    every other entry 0. The softmax (the official ``prepare_attn_A_b``, DGL ``edge_softmax``
    normalized by source) subtracts each segment's max: exp cannot overflow; its rows sum to
    exactly 1 wherever s has an outgoing edge.

    Backward. A cotangent ``Ā`` reaches edge e only through its own entry ``Ā[h, s, t]``:

        degree:   ℓ̄[e, h] = Ā[h, s, t] · 1[0 ≤ ℓ ≤ 1] / deg(s)
                  (the clip's derivative: 1 inside, 0 outside; at the kinks ℓ = 0, 1 the
                  derivative is taken as 1, as ``torch.clamp``'s backward does)
        softmax:  with a = A[h, s, t] and ḡ = Ā[h, s, t] per edge, the softmax VJP per segment
                  ``ℓ̄[e, h] = a_e (ḡ_e − Σ_{e' from s} a_{e'} ḡ_{e'})``

    Args:
        edge_logits: (E, H) the encoder's logits per edge and head, float32 or float64.
        src: (E,) source node of each edge, in [0, num_nodes).
        dst: (E,) destination node of each edge, in [0, num_nodes); no (src, dst) pair twice.
        num_nodes: n, the number of nodes (the official ``g.num_nodes()``).
        normalization: ``"degree"`` (official ``prepare_degree_A_b``, used by ``CGS``) or
            ``"softmax"`` (official ``prepare_attn_A_b``).

    Returns:
        A: (H, n, n) the dense transition matrices, one per head (as the official code).

    Pitfall: the official code scatters the per-edge values at ``g.adj()._indices()``, the
    coalesced (row-sorted) adjacency indices; that is each edge's own (src, dst) only when the
    edge ids are sorted by (src, dst). Here every edge's value goes to its own (src, dst).

    Reference: Park, Choo, Park, *Convergent Graph Solvers*, arXiv:2106.01680 (ICLR 2022),
    Section 3 (contractive transition maps); official code Junyoungpark/CGS,
    ``CGS/gnn/CGS/fp_utils.py`` (``prepare_degree_A_b``: ``A_logit.clip(0.0, 1.0)`` divided by the
    source's ``out_degree``; ``prepare_attn_A_b``).

    >>> import numpy as np, refimpl
    >>> # node 0 → 1 and 0 → 2 (out-degree 2), node 1 → 0 (out-degree 1); one head
    >>> logits = np.array([[0.5], [1.7], [-0.3]])
    >>> src, dst = np.array([0, 0, 1]), np.array([1, 2, 0])
    >>> A = refimpl.solvers.cgs_transition_matrix(logits, src, dst, num_nodes=3)
    >>> A[0]                                 # clip: 0.5, 1, 0; rows divided by 2, 1
    array([[0.  , 0.25, 0.5 ],
           [0.  , 0.  , 0.  ],
           [0.  , 0.  , 0.  ]])
    """
    heads = edge_logits.shape[1]
    if normalization == "degree":
        out_degree = np.bincount(src, minlength=num_nodes).astype(edge_logits.dtype)
        values = np.clip(edge_logits, 0, 1) / out_degree[src][:, None]
        residuals = ("degree", edge_logits, src, dst, out_degree)
    else:
        values = segment_softmax(edge_logits, src, num_nodes)
        residuals = ("softmax", values, src, dst, num_nodes)
    a = np.zeros((heads, num_nodes, num_nodes), dtype=edge_logits.dtype)
    a[:, src, dst] = values.T
    return a, residuals


@cgs_transition_matrix.defvjp
def cgs_transition_matrix_backward(residuals, g_a):
    kind, saved, src, dst, extra = residuals
    g_values = g_a[:, src, dst].T  # (E, H): each edge's own entry
    if kind == "degree":
        edge_logits, out_degree = saved, extra
        inside = (edge_logits >= 0) & (edge_logits <= 1)
        return (np.where(inside, g_values, 0) / out_degree[src][:, None],)
    values, num_nodes = saved, extra
    weighted = values * g_values
    sums = np.zeros((num_nodes, values.shape[1]), dtype=values.dtype)
    np.add.at(sums, src, weighted)
    return (weighted - values * sums[src],)


# -- the fixed point ----------------------------------------------------------------------------------
_ACTIVATIONS = {
    "identity": (lambda y: y, lambda y: np.ones_like(y)),
    "tanh": (np.tanh, lambda y: 1 - np.tanh(y) ** 2),
}


def _check_contraction(arguments) -> None:
    a = _host(arguments["A"])
    gamma = float(arguments["gamma"])
    row_sums = np.abs(a.astype(np.float64)).sum(axis=2).max() if a.size else 0.0
    if not gamma * row_sums < 1:
        raise ArgumentError(
            "A",
            "a contraction: every row of |γA| summing to < 1 (cgs_transition_matrix builds rows ≤ 1, γ < 1)",
            f"max row sum of |γA| = {gamma * row_sums:.6g}",
        )


def _apply(a, x, b, gamma, phi):
    """One application of the map: ``φ(γ A x + b)`` per head."""
    return phi(gamma * np.einsum("hij,hj->hi", a, x) + b)


@op(
    inputs={
        "A": FloatArray("H", "n", "n"),
        "b": FloatArray("H", "n"),
        "gamma": RealScalar(0, 1, low_open=True, high_open=True),
        "activation": OneOf("identity", "tanh"),
        "tol": RealScalar(0),
        "max_iter": IntScalar(0),
    },
    outputs=("z", "residual_norms", "iterations", "converged"),
    differentiable=("A", "b"),
    check=_check_contraction,
    custom_vjp=(
        "implicit: the gradient of the exact fixed point z* = φ(γAz* + b) (the official backward hook), "
        "not of the truncated iteration (they differ by O(tol)); the convergence record carries no gradient"
    ),
)
def cgs_fixed_point(A, b, *, gamma=0.5, activation="identity", tol=1e-6, max_iter=50):  # noqa: N803
    r"""CGS's fixed-point layer: ``z = φ(γAz + b)`` per head, iterated to a tolerance, implicit VJP.

    A contraction (``‖γA‖_∞ < 1`` with ``|φ'| ≤ 1``) has a unique fixed point reached from any
    start; CGS makes the graph's transition matrix contractive by construction
    (``cgs_transition_matrix``), finds the fixed point by iteration and differentiates it
    implicitly: memory does not grow with the number of iterations.

    Forward (the official ``FixedPointLayer.solve_fp_eq``, then one more map), per head h::

        x₀ = 0;  for k = 0, 1, … while k < max_iter:
            x_next = φ(γ A x_k + b)
            r_k = ‖x_k − x_next‖            (Frobenius over ALL heads at once, as the code)
            if r_k < tol: stop (converged) — x_k is kept, not x_next
            x_{k+1} = x_next
        z = φ(γ A x + b)                     (the map once more, on the kept iterate)

    With φ = identity the error contracts by at least γ per step in the ∞-norm (``r_{k+1} ≤
    γ ‖A‖_∞ r_k``), so the default 50 iterations bound it by ~γ⁵⁰ in that norm.

    Backward (implicit, the official backward hook). At the fixed point ``z = φ(y)``,
    ``y = γAz + b``, with ``D = diag(φ'(y))``: ``dz = D(γ dA z + γA dz + db)``, so
    ``(I − DγA) dz = D(γ dA z + db)``. For a cotangent z̄, let ``λ = (I − DγA)⁻ᵀ z̄``, i.e.
    ``λ = γAᵀDλ + z̄`` (the official code iterates this to tol; here a dense LU solve per head,
    exact to rounding); then ``⟨λ, D(γ dA z + db)⟩`` gives::

        b̄ = D λ,        Ā = γ (Dλ) zᵀ          (per head; y and D are evaluated at the final z)

    and, for reference, ``γ̄ = Σ_h ⟨Dλ, A z⟩`` (γ is a hyperparameter here, not an input with a
    gradient). For φ = identity this is ``λ = (I − γA)⁻ᵀ z̄``, ``b̄ = λ``, ``Ā = γ λ zᵀ``. The
    record outputs carry no gradient. The result is the derivative of the exact fixed point;
    the forward returns it to the tolerance, so the two agree to O(tol).

    Args:
        A: (H, n, n) transition matrices with ``max row sum of |γA| < 1`` (refused otherwise),
            float32 or float64.
        b: (H, n) the per-head inputs (the official ``b`` of shape (H, n, 1), squeezed).
        gamma: the contraction factor γ in (0, 1) (official configs: 0.5).
        activation: φ, ``"identity"`` (every official config: ``non_linear: Identity``) or
            ``"tanh"`` (|φ'| ≤ 1 keeps the contraction).
        tol: the stopping threshold on ``‖x_k − x_next‖`` (official default 1e-6, absolute).
        max_iter: the most iterations (official default 50); 0 applies the map once to x = 0.

    Returns:
        z: (H, n) the fixed point (the map applied once more to the kept iterate).
        residual_norms: (number of norms computed,) ``r_0, r_1, …`` (the last is below tol when
            converged).
        iterations: int64 0-d array, the iterates accepted (the official ``frd_itr``).
        converged: bool 0-d array, whether ``r_k < tol`` stopped the loop.

    Reference: Park, Choo, Park, *Convergent Graph Solvers*, arXiv:2106.01680 (ICLR 2022),
    Section 3 (fixed-point forward, implicit backward); official code Junyoungpark/CGS,
    ``CGS/gnn/CGS/fixedpoint.py`` (``FixedPointLayer``: ``tol=1e-6``, ``max_iter=50``;
    ``solve_fp_eq``; the backward hook ``J = γ(dphi·A)ᵀ``), ``CGS/configs/*/cgs.yaml``
    (``gamma: 0.5``, ``non_linear: Identity``).

    >>> import numpy as np, refimpl
    >>> A, b = np.array([[[0.0, 1.0], [1.0, 0.0]]]), np.array([[1.0, 1.0]])
    >>> z, norms, iterations, converged = refimpl.solvers.cgs_fixed_point(A, b, tol=1e-12, max_iter=100)
    >>> z.round(10), bool(converged)         # z = 0.5·(z₂, z₁) + 1 ⇒ z = (2, 2)
    (array([[2., 2.]]), True)
    """
    phi, _ = _ACTIVATIONS[activation]
    dtype = b.dtype.type
    g = dtype(gamma)
    x = np.zeros_like(b)
    norms = []
    iterations = 0
    converged = False
    while iterations < max_iter:
        x_next = _apply(A, x, b, g, phi)
        norm = np.sqrt(np.sum((x - x_next).astype(np.float64) ** 2))
        norms.append(norm)
        if norm < tol:
            converged = True
            break
        x = x_next
        iterations += 1
    z = _apply(A, x, b, g, phi)
    outputs = (
        z,
        np.asarray(norms, dtype=b.dtype),
        np.asarray(iterations, dtype=np.int64),
        np.asarray(converged),
    )
    return outputs, (A, b, g, activation, z)


@cgs_fixed_point.defvjp
def cgs_fixed_point_backward(residuals, cotangents):
    A, b, gamma, activation, z = residuals  # noqa: N806
    g_z = cotangents[0]
    _, derivative = _ACTIVATIONS[activation]
    d = derivative(gamma * np.einsum("hij,hj->hi", A, z) + b)  # D at the final z, (H, n)
    # (I − γAᵀD) λ = z̄ per head: (I − γ Aᵀ diag(d)) = I − γ (A * d[:, :, None])ᵀ
    identity = np.eye(A.shape[1], dtype=A.dtype)
    system = identity - gamma * np.swapaxes(A * d[:, :, None], 1, 2)
    lam = np.linalg.solve(system, g_z[:, :, None])[:, :, 0]
    g_b = d * lam
    g_a = gamma * g_b[:, :, None] * z[:, None, :]
    return g_a, g_b
