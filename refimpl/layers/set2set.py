"""Set2Set read-process-write pooling and the order-search loss (Order Matters: Sequence to
sequence for sets)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, IntScalar, Paper, op, sigmoid

__all__ = [
    "MAX_PROCESSING_STEPS",
    "PAPER",
    "lstm_gates",
    "order_search_loss",
    "segment_softmax",
    "set2set_pooling",
]

PAPER = Paper("Order Matters: Sequence to sequence for sets", arxiv="1511.06391", year=2016)

#: A sanity cap on the unrolled length T, not a model constant: the residuals grow with T, and
#: the paper's experiments use a handful of process steps.
MAX_PROCESSING_STEPS = 2**12


def segment_softmax(e, set_index, num_sets):
    """``a_n = exp(e_n − max_{s(n)}) / Σ_{j∈s(n)} exp(e_j − max_{s(n)})`` per set (the max shift
    keeps exp ≤ 1, so the sum is ≥ 1 and never overflows). An empty set has no entries."""
    shift = np.full(num_sets, -np.inf, dtype=e.dtype)
    np.maximum.at(shift, set_index, e)
    w = np.exp(e - shift[set_index])
    total = np.zeros(num_sets, dtype=e.dtype)
    np.add.at(total, set_index, w)
    return w / total[set_index]


def lstm_gates(pre):
    """PyTorch's LSTM gate order along the last axis: ``i, f, g, o`` (each of width d)."""
    d = pre.shape[-1] // 4
    return (
        sigmoid(pre[..., :d]),
        sigmoid(pre[..., d : 2 * d]),
        np.tanh(pre[..., 2 * d : 3 * d]),
        sigmoid(pre[..., 3 * d :]),
    )


def _check_set2set(arguments) -> None:
    d = arguments["memories"].shape[1]
    w_ih, w_hh = arguments["w_ih"], arguments["w_hh"]
    if w_ih.shape != (4 * d, 2 * d):
        raise ArgumentError(
            "w_ih", f"shape (4d, 2d) = ({4 * d}, {2 * d}) (LSTM input size 2d, hidden d)", str(w_ih.shape)
        )
    if w_hh.shape != (4 * d, d):
        raise ArgumentError("w_hh", f"shape (4d, d) = ({4 * d}, {d})", str(w_hh.shape))
    index = arguments["set_index"]
    num_sets = arguments["num_sets"]
    if num_sets > max(index.shape[0], 1):
        raise ArgumentError(
            "num_sets",
            f"at most N = {index.shape[0]} sets (the number of memories; an id is not a size: the rows "
            "of sets beyond the last memory depend only on the LSTM weights and can be appended outside)",
            str(num_sets),
        )
    if index.size and int(index.max()) >= num_sets:
        raise ArgumentError(
            "set_index", f"set indices below num_sets = {num_sets}", f"max {int(index.max())}"
        )


@op(
    inputs={
        "memories": FloatArray("N", "d"),
        "set_index": IntArray("N", low=0),
        "w_ih": FloatArray("G", "E"),
        "w_hh": FloatArray("G", "d"),
        "b_ih": FloatArray("G"),
        "b_hh": FloatArray("G"),
        "num_sets": IntScalar(1),
        "processing_steps": IntScalar(1, MAX_PROCESSING_STEPS),
    },
    outputs=("q_star",),
    differentiable=("memories", "w_ih", "w_hh", "b_ih", "b_hh"),
    check=_check_set2set,
)
def set2set_pooling(memories, set_index, w_ih, w_hh, b_ih, b_hh, *, num_sets, processing_steps):
    r"""Set2Set: an LSTM that attends T times over a set's memories; order-invariant pooling.

    The "process" block of the read-process-write network (paper §4): a query
    LSTM with no input of its own reads back its previous query and the attention readout,
    so the result depends on the set only through sums over its elements. Semantics and
    parameter layout follow PyTorch Geometric's ``torch_geometric.nn.aggr.Set2Set``
    (one-layer ``torch.nn.LSTM(2d, d)``; zero initial query and state; ragged sets by a set
    index), so its weights load unchanged.

    Forward, for each set s (all sets at once, ``q*_0 = 0 ∈ R^{2d}``, ``h_0 = c_0 = 0 ∈ R^d``),
    t = 1..T::

        z_t   = W_ih q*_{t−1} + b_ih + W_hh h_{t−1} + b_hh         (4d; gate order i, f, g, o)
        i, f, o = σ(z_t[i]), σ(z_t[f]), σ(z_t[o]);  g = tanh(z_t[g])
        c_t   = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t),   q_t = h_t
        e_n   = ⟨m_n, q_t⟩                    for memories n of the set (dot product, no scaling)
        a_n   = exp(e_n − max e) / Σ_j exp(e_j − max e)   (softmax within the set, max-shifted)
        r_t   = Σ_n a_n m_n
        q*_t  = [q_t ; r_t]

    Output ``q*_T`` (S, 2d). An empty set has ``r_t = 0`` (PyG's scatter-sum of nothing).
    PyG adds 1e-16 to the softmax denominator; the max-shifted sum is ≥ 1, so that is below
    half an ulp in float32 and float64 and is omitted.

    Backward. Given ``q̄*_T``, walk t = T..1 carrying ``q̄*_t`` (input path), ``h̄`` and ``c̄``
    (recurrent state, both 0 at T). Split ``q̄*_t = [q̄ ; r̄]``.

    * Attention (``r = Σ a_n m_n``, ``a = softmax(e)``, ``e_n = ⟨m_n, q⟩``)::

          ā_n = ⟨r̄, m_n⟩,  ē_n = a_n (ā_n − Σ_j a_j ā_j)        (softmax VJP)
          m̄_n += a_n r̄ + ē_n q,   q̄ += Σ_n ē_n m_n

    * LSTM at step t, with ``h̄_t = q̄ + h̄`` (the query is the hidden state)::

          c̄_t = h̄_t ⊙ o ⊙ (1 − tanh² c_t) + c̄
          ō = h̄_t ⊙ tanh c_t,  ī = c̄_t ⊙ g,  f̄ = c̄_t ⊙ c_{t−1},  ḡ = c̄_t ⊙ i
          z̄_t = [ī i(1−i) ; f̄ f(1−f) ; ḡ (1−g²) ; ō o(1−o)]
          W̄_ih += z̄_tᵀ q*_{t−1},  W̄_hh += z̄_tᵀ h_{t−1},  b̄_ih += Σ_s z̄_t,  b̄_hh += Σ_s z̄_t
          q̄*_{t−1} = z̄_t W_ih,   h̄ ← z̄_t W_hh,   c̄ ← c̄_t ⊙ f

    Args:
        memories: m (N, d), the set elements' embeddings.
        set_index: (N,) the set of each memory, in [0, num_sets) (any order; PyG's ``batch``).
        w_ih, b_ih: the LSTM's input weights (4d, 2d) and bias (4d,), rows in gate order i, f, g, o.
        w_hh, b_hh: the LSTM's recurrent weights (4d, d) and bias (4d,).
        num_sets: S ≤ N, the number of sets (PyG's ``dim_size``); sets with no memory are
            allowed (S > N is refused: the count is not taken as an allocation size).
        processing_steps: T ≥ 1, required (PyG's ``processing_steps``; the paper varies it);
            at most ``MAX_PROCESSING_STEPS`` (a sanity cap).

    Returns:
        q_star: (S, 2d), ``[q_T ; r_T]`` per set.

    Reference: Vinyals, Bengio and Kudlur, *Order Matters: Sequence to sequence for sets*,
    arXiv:1511.06391, §4 (read, process, write); PyTorch Geometric ``torch_geometric/nn/aggr/set2set.py``.

    >>> import numpy as np, refimpl
    >>> m = np.array([[1.0], [3.0]])
    >>> z = np.zeros(4)
    >>> refimpl.layers.set2set_pooling(m, np.array([0, 0]), np.zeros((4, 2)), np.zeros((4, 1)),
    ...     z, z, num_sets=1, processing_steps=1)
    array([[0., 2.]])
    """
    num_sets = int(num_sets)
    d = memories.shape[1]
    dtype = memories.dtype
    q_star = np.zeros((num_sets, 2 * d), dtype=dtype)
    h = np.zeros((num_sets, d), dtype=dtype)
    c = np.zeros((num_sets, d), dtype=dtype)
    steps = []
    for _ in range(int(processing_steps)):
        z = q_star @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = lstm_gates(z)
        c_next = f * c + i * g
        tanh_c = np.tanh(c_next)
        h_next = o * tanh_c
        e = np.einsum("nd,nd->n", memories, h_next[set_index])
        a = segment_softmax(e, set_index, num_sets)
        r = np.zeros((num_sets, d), dtype=dtype)
        np.add.at(r, set_index, a[:, None] * memories)
        steps.append((q_star, h, c, i, f, g, o, tanh_c, a))
        q_star = np.concatenate([h_next, r], axis=1)
        h, c = h_next, c_next
    return q_star, (memories, set_index, num_sets, w_ih, w_hh, steps)


@set2set_pooling.defvjp
def set2set_pooling_backward(residuals, g_q_star):
    memories, set_index, num_sets, w_ih, w_hh, steps = residuals
    d = memories.shape[1]
    g_memories = np.zeros_like(memories)
    g_w_ih, g_w_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    g_bias = np.zeros(w_ih.shape[0], dtype=memories.dtype)
    g_h = np.zeros((num_sets, d), dtype=memories.dtype)  # from step t+1's recurrence
    g_c = np.zeros((num_sets, d), dtype=memories.dtype)
    for q_star_prev, h_prev, c_prev, i, f, g, o, tanh_c, a in reversed(steps):
        g_q, g_r = g_q_star[:, :d], g_q_star[:, d:]
        q = o * tanh_c
        # attention: ā_n = ⟨r̄, m_n⟩, ē = a(ā − Σ a ā) per set
        g_a = np.einsum("nd,nd->n", memories, g_r[set_index])
        weighted = np.zeros(num_sets, dtype=memories.dtype)
        np.add.at(weighted, set_index, a * g_a)
        g_e = a * (g_a - weighted[set_index])
        g_memories += a[:, None] * g_r[set_index] + g_e[:, None] * q[set_index]
        g_q_attention = np.zeros((num_sets, d), dtype=memories.dtype)
        np.add.at(g_q_attention, set_index, g_e[:, None] * memories)
        # LSTM cell
        g_h_t = g_q + g_q_attention + g_h
        g_c_t = g_h_t * o * (1 - tanh_c * tanh_c) + g_c
        g_z = np.concatenate(
            [
                g_c_t * g * i * (1 - i),
                g_c_t * c_prev * f * (1 - f),
                g_c_t * i * (1 - g * g),
                g_h_t * tanh_c * o * (1 - o),
            ],
            axis=1,
        )
        g_w_ih += g_z.T @ q_star_prev
        g_w_hh += g_z.T @ h_prev
        g_bias += g_z.sum(axis=0)
        g_q_star = g_z @ w_ih
        g_h = g_z @ w_hh
        g_c = g_c_t * f
    return g_memories, g_w_ih, g_w_hh, g_bias, g_bias.copy()


@op(
    inputs={"log_likelihoods": FloatArray("B", "K")},
    outputs=("loss",),
    differentiable=("log_likelihoods",),
)
def order_search_loss(log_likelihoods):
    r"""Order-search loss: the negative log-likelihood of the best candidate output order.

    When the output is a set, the paper (§5, searching over orders) trains on the order the model itself
    finds most likely: ``θ* = argmax_θ Σ_X max_{π∈Π(X)} log p(Y_π | X; θ)``. Given the
    log-likelihoods of the candidate orders (all of them, a sample, or the current model's
    best, as the paper's approximate search supplies them), the per-example loss is::

        L_b = −max_k ℓ_{b,k}

    Backward. ``max`` is piecewise linear: away from ties ``∂L_b/∂ℓ_{b,k} = −[k = k*_b]``, so
    ``ℓ̄_{b,k} = −L̄_b [k = k*_b]`` with ``k*_b = argmax_k ℓ_{b,k}``. At a tie the gradient goes to
    the first maximal candidate only (a fixed subgradient, NumPy's ``argmax`` rule). The
    search itself (sampling orders, running the model) is outside the op.

    Args:
        log_likelihoods: ℓ (B, K), ``log p(Y_π_k | X_b)`` for K candidate orders per example.

    Returns:
        loss: (B,), ``−max_k ℓ_{b,k}`` (no reduction: sum or average over examples outside).

    Reference: Vinyals, Bengio and Kudlur, *Order Matters: Sequence to sequence for sets*,
    arXiv:1511.06391, §5 (the order-search loss).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.order_search_loss(np.array([[-3.0, -1.0, -2.0]]))
    array([1.])
    """
    best = np.argmax(log_likelihoods, axis=1)
    loss = -np.take_along_axis(log_likelihoods, best[:, None], axis=1)[:, 0]
    return loss, (best, log_likelihoods.shape, log_likelihoods.dtype)


@order_search_loss.defvjp
def order_search_loss_backward(residuals, g_loss):
    best, shape, dtype = residuals
    g_log_likelihoods = np.zeros(shape, dtype=dtype)
    g_log_likelihoods[np.arange(shape[0]), best] = -g_loss
    return (g_log_likelihoods,)
