"""Expert Merging: learned chunk-wise task-vector coefficients (Expert Merging, Zhang et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    Paper,
    RealScalar,
    StateDict,
    op,
    sigmoid_and_slope,
)

__all__ = [
    "PAPER",
    "chunk_bounds",
    "expert_merging",
    "expert_merging_coefficient_regularizer",
    "expert_merging_pp_chunk_allocation",
    "hidden_state_mse",
    "task_vector",
]

PAPER = Paper(
    "Expert Merging: Model Merging with Unsupervised Expert Alignment and Importance-Guided Layer Chunking",
    arxiv="2509.25712",
    year=2025,
    code="Littleor/ExpertMerging",
)


def chunk_bounds(n: int, num_chunks: int, official_chunking: bool = True) -> np.ndarray:
    """Boundaries ``b`` (length C + 1) of the C chunks of a flattened tensor of n elements.

    Chunk c holds the flat indices ``b[c] <= j < b[c + 1]``; an empty chunk has
    ``b[c] == b[c + 1]``.

    * ``official_chunking=True`` (``torch.chunk``, the official code): chunk size
      ``s = ⌈n/C⌉``, chunk c = ``[c·s, min((c + 1)·s, n))``. Only ``⌈n/s⌉`` chunks are
      non-empty, which can be FEWER than C (n = 5, C = 4: s = 2, chunks {0,1}, {2,3}, {4},
      and chunk 3 is empty); the last non-empty one may be shorter than s.
    * ``official_chunking=False`` (``numpy.array_split`` / ``torch.tensor_split``): exactly
      C chunks whose sizes differ by at most one; the FIRST ``n mod C`` chunks have
      ``⌊n/C⌋ + 1`` elements, the others ``⌊n/C⌋`` (n = 5, C = 4: sizes 2, 1, 1, 1; n < C
      leaves the last C − n chunks empty).

    >>> chunk_bounds(5, 4).tolist(), chunk_bounds(5, 4, official_chunking=False).tolist()
    ([0, 2, 4, 5, 5], [0, 2, 3, 4, 5])
    """
    chunks = np.arange(num_chunks + 1)
    if official_chunking:
        size = -(-n // num_chunks)  # ⌈n/C⌉
        return np.minimum(chunks * size, n)
    small, larger = divmod(n, num_chunks)
    return chunks * small + np.minimum(chunks, larger)


# -- task vectors ------------------------------------------------------------------------
@op(
    inputs={"theta_expert": FloatArray("..."), "theta_base": FloatArray("...")},
    outputs=("tau",),
    differentiable=("theta_expert", "theta_base"),
    state_dict=StateDict({"theta_expert": "tensor", "theta_base": "tensor"}, outputs=("tau",)),
)
def task_vector(theta_expert, theta_base):
    r"""The task vector of an expert: what fine-tuning added to the base, ``τ = θ_k − θ₀``.

    One parameter tensor at a time (any shape; both of the same shape and dtype). Expert
    Merging, like task arithmetic, never touches the experts' weights directly: it learns how
    much of each ``τ_k`` to add back to θ₀ (see ``expert_merging``).

    Backward. ``τ`` is linear in both inputs: ``θ̄_k = τ̄`` and ``θ̄₀ = −τ̄``.

    Whole models: ``task_vector(expert_sd, base_sd)`` with state dicts gives the task vector of
    every floating-point tensor (integer buffers are copied from the expert).

    Args:
        theta_expert: the fine-tuned expert's parameter θ_k, any shape, float32 or float64.
        theta_base: the pretrained parameter θ₀, same shape and dtype.

    Returns:
        tau: ``θ_k − θ₀``, same shape and dtype.

    Reference: Zhang et al., arXiv:2509.25712 (official code Littleor/ExpertMerging,
    ``TaskVector``).

    >>> import numpy as np, refimpl
    >>> refimpl.merging.task_vector(np.array([1.5, -2.0]), np.array([1.0, 1.0]))
    array([ 0.5, -3. ])
    """
    return theta_expert - theta_base, None


@task_vector.defvjp
def task_vector_backward(residuals, g_tau):
    return g_tau, -g_tau


# -- the merge -----------------------------------------------------------------------------
@op(
    inputs={
        "theta_base": FloatArray("..."),
        "task_vectors": FloatArray("...", "K"),
        "a": FloatArray("K", "C"),
        "official_chunking": Flag(),
    },
    outputs=("theta",),
    differentiable=("a",),
    state_dict=StateDict(
        {"theta_base": "tensor", "task_vectors": "models", "a": "per_tensor"}, outputs=("theta",)
    ),
)
def expert_merging(theta_base, task_vectors, a, *, official_chunking=True):
    r"""Merge K experts into one parameter tensor with learned, chunk-wise sigmoid coefficients.

    Expert Merging keeps the base θ₀ and the experts' task vectors ``τ_k = θ_k − θ₀`` frozen
    and learns only a few raw coefficients per parameter tensor and expert: α = sigmoid(a)
    (so 0 ≤ α ≤ 1) scales each expert's task vector before it is added to the base. With one
    chunk (C = 1, the default of Expert Merging) every tensor gets one α per expert
    ("layer-wise" merging); Expert Merging++ splits the flattened tensor into C chunks with
    one α per chunk and expert. The coefficients are trained to align the merged model with
    each expert on unlabeled data (``distillation_kl``, ``hidden_state_mse``,
    ``expert_merging_coefficient_regularizer``).

    Forward, for one parameter tensor of n elements (flattened in C order, index j)::

        α_{k,c} = sigmoid(a_{k,c})                            (stable, see sigmoid_and_slope)
        θ_j     = θ₀_j + Σ_k α_{k,c(j)} τ_{k,j}               c(j): the chunk holding j

    Chunking convention (``chunk_bounds``). ``official_chunking=True`` (the default, the
    official code's ``torch.chunk``): chunks of ``s = ⌈n/C⌉`` consecutive elements,
    ``c(j) = ⌊j/s⌋``. That yields only ``⌈n/s⌉`` chunks, which can be FEWER than C: n = 5,
    C = 4 gives s = 2 and three chunks {0, 1}, {2, 3}, {4}; the official code zips chunks
    with coefficients and silently ignores the extra ones, so here ``a_{k,3}`` does not
    enter θ and its gradient is exactly 0. ``official_chunking=False``: an even split into
    exactly C chunks whose sizes differ by at most one, the FIRST ``n mod C`` chunks being
    the larger (``⌊n/C⌋ + 1``), as in ``numpy.array_split`` (n = 5, C = 4: sizes 2, 1, 1, 1;
    when n < C the last C − n chunks are empty and their coefficients get zero gradient).
    The expert sum is accumulated first and added to θ₀ last, in the official order
    ``θ₀ + (α₁τ₁ + α₂τ₂ + …)``.

    Backward. θ is linear in α: ``∂θ_j/∂α_{k,c} = τ_{k,j}`` if j ∈ chunk c, else 0. For a
    cotangent θ̄ (shape of θ₀)::

        ᾱ_{k,c} = Σ_{j ∈ chunk c} θ̄_j τ_{k,j}                ⟨θ̄|_c, τ_{k,c}⟩ (0 for an empty chunk)
        ā_{k,c} = ᾱ_{k,c} · α_{k,c}(1 − α_{k,c})              sigmoid'(a) = α(1 − α)

    θ₀ and the task vectors are frozen (not differentiable here). Their cotangents would be
    ``θ̄₀ = θ̄`` and ``τ̄_{k,j} = α_{k,c(j)} θ̄_j``; the second is as large as all task vectors
    together, so it is left to a caller who needs it.

    Layout. The task vectors are stacked on a TRAILING axis, ``task_vectors[..., k] = τ_k``
    (shape ``θ₀.shape + (K,)``, e.g. ``numpy.stack(taus, axis=-1)``): the shared argument
    validation then checks the shape relation exactly.

    Whole models: ``expert_merging(theta0_sd, [tau_sd_1, ..., tau_sd_K], a)`` with state dicts
    θ₀ and τ_k; ``a`` is a mapping ``{name: (K, C) a}`` (one set of coefficients per tensor,
    the official layout, where C may differ between tensors) or one (K, C) array shared by
    every tensor (``refimpl.vjp`` then returns the sum over tensors of ā). The chunks are
    those of each tensor. Integer buffers are copied from θ₀.

    Args:
        theta_base: the pretrained parameter θ₀, any shape, float32 or float64.
        task_vectors: ``τ_k = θ_k − θ₀`` stacked on the last axis, shape ``θ₀.shape + (K,)``.
        a: raw coefficients (K, C), finite; the official initialization is
            ``a = logit(0.1)`` (α = 0.1), one chunk (C = 1) unless chunk counts are given.
        official_chunking: ``torch.chunk`` chunks of ⌈n/C⌉ (default) or an even split.

    Returns:
        theta: the merged parameter, shape and dtype of ``theta_base``.

    Reference: Zhang et al., *Expert Merging: Model Merging with Unsupervised Expert
    Alignment and Importance-Guided Layer Chunking*, arXiv:2509.25712; official code
    Littleor/ExpertMerging (``scale_tensor_by_coeffs``, ``activate_func = sigmoid``).

    >>> import numpy as np, refimpl
    >>> theta0 = np.zeros(5)
    >>> taus = np.stack([np.ones(5), 10 * np.ones(5)], axis=-1)        # (5, K = 2)
    >>> a = np.array([[0.0, 0.0, 0.0, 0.0], [-40.0, 0.0, 40.0, 0.0]])  # α ≈ 0.5 | 0, 0.5, 1, 0.5
    >>> refimpl.merging.expert_merging(theta0, taus, a).round(6)      # chunks {0,1} {2,3} {4}
    array([ 0.5,  0.5,  5.5,  5.5, 10.5])
    """
    n = theta_base.size
    num_experts, num_chunks = a.shape
    alpha, slope = sigmoid_and_slope(a)
    bounds = chunk_bounds(n, num_chunks, official_chunking)
    sizes = np.diff(bounds)
    tau = task_vectors.reshape(n, num_experts)  # row j holds τ_{1..K, j}
    alpha_per_element = np.repeat(alpha, sizes, axis=1)  # (K, n): α_{k, c(j)}
    combined = np.zeros(n, dtype=theta_base.dtype)
    for k in range(num_experts):  # the official order: Σ_k first, then θ₀ + Σ
        combined = combined + alpha_per_element[k] * tau[:, k]
    theta = theta_base + combined.reshape(theta_base.shape)
    return theta, (tau, slope, bounds)


@expert_merging.defvjp
def expert_merging_backward(residuals, g_theta):
    tau, slope, bounds = residuals
    g_flat = g_theta.reshape(-1)
    num_experts, num_chunks = slope.shape
    g_alpha = np.zeros((num_experts, num_chunks), dtype=tau.dtype)
    for c in range(num_chunks):
        start, end = bounds[c], bounds[c + 1]
        g_alpha[:, c] = g_flat[start:end] @ tau[start:end]  # ⟨θ̄|_c, τ_{k,c}⟩ for every k
    g_a = g_alpha * slope
    return (g_a,)


# -- the coefficient regularizer -----------------------------------------------------------------
def _check_regularizer(arguments) -> None:
    a, num_experts = arguments["a"], arguments["num_experts"]
    if a.size % num_experts:
        raise ArgumentError(
            "num_experts",
            f"a divisor of the number of coefficients a.size = {a.size} (K experts × chunks)",
            f"num_experts = {num_experts}",
        )


@op(
    inputs={
        "a": FloatArray("..."),
        "weight": RealScalar(0),
        "num_experts": IntScalar(1),
        "target": RealScalar(0, 1),
    },
    outputs=("loss",),
    differentiable=("a",),
    check=_check_regularizer,
)
def expert_merging_coefficient_regularizer(a, *, weight=0.1, num_experts, target=0.1):
    r"""Expert Merging's coefficient regularizer: an L1 pull of every α back to its init 0.1.

    Keeps the learned coefficients near their initialization (α = 0.1) unless the alignment
    loss pays for moving them: a mean absolute deviation, normalized so that its size does
    not grow with the number of chunks.

    Forward, over ALL raw coefficients of the model at once (``a`` holds the coefficients of
    every parameter tensor, in any shape, e.g. concatenated; N = a.size = K·Σ_tensors C_t)::

        α = sigmoid(a)
        R = λ_reg · Σ_i |α_i − t| / (N/K)

    ``N/K`` is the official ``trainable_params_count / num_teachers``: the number of
    coefficients per expert. t = 0.1 is the official ``weight_coeffs_init_value``.

    Backward::

        ā_i = ḡ · λ_reg · sign(α_i − t) · α_i(1 − α_i) / (N/K)

    with the subgradient ``sign(0) = 0`` at α_i = t exactly (what ``torch.abs``'s backward
    gives; in floating point α = sigmoid(logit(0.1)) need not equal t exactly).

    Args:
        a: raw coefficients, any shape, finite, float32 or float64.
        weight: λ_reg ≥ 0, the official ``sparsity_reg_weight`` (default 0.1).
        num_experts: K ≥ 1; must divide ``a.size``.
        target: t ∈ [0, 1], the initialization the coefficients are pulled to (default 0.1).

    Returns:
        loss: a scalar in the dtype of ``a``.

    Reference: arXiv:2509.25712; official code Littleor/ExpertMerging
    (``compute_regularization_loss``).

    >>> import numpy as np, refimpl
    >>> a = np.array([[0.0, 0.0], [0.0, -40.0]])   # α = 0.5, 0.5 | 0.5, ≈0 ; K = 2, N/K = 2
    >>> round(float(refimpl.merging.expert_merging_coefficient_regularizer(a, num_experts=2)), 6)
    0.065
    """
    dtype = a.dtype.type
    alpha, slope = sigmoid_and_slope(a)
    per_expert = a.size // num_experts  # N/K
    deviation = alpha - dtype(target)
    loss = dtype(weight) * abs(deviation).sum() / dtype(per_expert)
    return np.asarray(loss, dtype=a.dtype), (np.sign(deviation), slope, dtype(weight / per_expert))


@expert_merging_coefficient_regularizer.defvjp
def expert_merging_coefficient_regularizer_backward(residuals, g_loss):
    sign, slope, scale = residuals
    return (g_loss * scale * sign * slope,)


# -- the hidden-state alignment term ----------------------------------------------------------------
@op(
    inputs={"h_merged": FloatArray("..."), "h_expert": FloatArray("...")},
    outputs=("loss",),
    differentiable=("h_merged", "h_expert"),
)
def hidden_state_mse(h_merged, h_expert):
    r"""Expert Merging's hidden-state alignment: the mean squared error, averaged over layers.

    On an input of expert k's domain, the merged model's hidden states at the chosen layers
    should match expert k's. The official code takes ``F.mse_loss`` (mean over every element)
    per chosen layer and averages over the layers; with the layers stacked on the first axis
    (all of the same shape, as in a Transformer) that is the mean over all elements::

        L = (1/|S|) Σ_{l∈S} mean((h_merged^l − h_expert^l)²) = mean((h_merged − h_expert)²)

    The official training objective multiplies it by λ_h = 0.1 (``hidden_states_weight``)
    and by the task weight; layers of different shapes: call once per layer and average.

    Backward, with N the number of elements::

        h̄_merged = ḡ · 2(h_merged − h_expert)/N,     h̄_expert = −h̄_merged

    Args:
        h_merged: hidden states of the merged model, e.g. (layers, batch, tokens, width),
            float32 or float64.
        h_expert: the expert's hidden states, same shape and dtype (usually constants).

    Returns:
        loss: a scalar in the input dtype.

    Reference: arXiv:2509.25712; official code Littleor/ExpertMerging
    (``compute_hidden_states_loss``).

    >>> import numpy as np, refimpl
    >>> float(refimpl.merging.hidden_state_mse(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]])))
    2.5
    """
    difference = h_merged - h_expert
    loss = (difference * difference).mean()
    return np.asarray(loss, dtype=h_merged.dtype), (difference,)


@hidden_state_mse.defvjp
def hidden_state_mse_backward(residuals, g_loss):
    (difference,) = residuals
    g_merged = g_loss * (2 / difference.size) * difference
    g_merged = g_merged.astype(difference.dtype, copy=False)
    return g_merged, -g_merged


# -- Expert Merging++: importance-guided chunk allocation ----------------------------------------------
def _check_allocation(arguments) -> None:
    magnitudes = arguments["task_vector_magnitudes"]
    if bool((magnitudes < 0).any()):
        raise ArgumentError(
            "task_vector_magnitudes",
            "mean absolute task-vector entries s >= 0",
            f"min s = {magnitudes.min()}",
        )
    weights = np.abs(arguments["alpha"]) * magnitudes
    if not bool((weights.sum(axis=1) > 0).any()):
        raise ArgumentError(
            "alpha",
            "at least one layer with Σ_k |α_k| s_k > 0 (the importances are normalized by their sum)",
            "every layer has importance 0",
        )


@op(
    inputs={
        "alpha": FloatArray("L", "K"),
        "task_vector_magnitudes": FloatArray("L", "K"),
        "parameter_counts": IntArray("L", low=1),
        "budget": IntScalar(0),
        "kappa": RealScalar(0),
    },
    outputs=("importance", "chunks"),
    check=_check_allocation,
)
def expert_merging_pp_chunk_allocation(alpha, task_vector_magnitudes, parameter_counts, *, budget, kappa):
    r"""Expert Merging++'s chunk allocation: more chunk-wise coefficients for important layers.

    After a first Expert Merging run with one coefficient per layer (parameter tensor) and
    expert, Expert Merging++ measures how much the merged model relies on each layer — the
    learned coefficient, times how far the expert moved that layer, times its size — and
    spends a budget of extra coefficients where that importance is high: a layer of chunk
    count m is split into m contiguous chunks with one coefficient each (``expert_merging``
    with C = m), while unimportant layers keep their single coefficient.

    Forward, for L layers and K experts::

        w_ℓ = Σ_k |α_{ℓ,k}| · s_{ℓ,k} · n_ℓ           s_{ℓ,k} = mean_j |τ_{k,ℓ,j}|, n_ℓ = numel
        I_ℓ = w_ℓ / Σ_j w_j                           (ℓ1-normalized: I ∈ [0, 1], Σ I = 1)
        m_ℓ = ⌊ B · I_ℓ^κ / Σ_j I_j^κ ⌋               (float64; 0^0 = 1)

    κ sets the steepness: κ = 0 gives every layer ⌊B/L⌋ chunks, κ > 1 concentrates the
    budget on the most important layers. ``m_ℓ = 0`` means no chunk-wise coefficients: the
    layer keeps one layer-wise coefficient per expert (call ``expert_merging`` with
    ``C = max(m_ℓ, 1)``). Σ m_ℓ ≤ B (the floors leave the remainder unspent). The shares
    are evaluated in float64; a share within a rounding of an integer may floor either way.

    Tie rule: none is needed. Each layer's count depends only on its own share (no
    largest-remainder redistribution), so layers of equal importance always get equal counts
    and the result does not depend on the order of the layers.

    PENDING pins. The importance metric is not in the released code (the official training
    script takes chunk counts as given). The formulas above are transcribed from a summary of
    arXiv:2509.25712 (layer-importance measure and importance-guided chunking), not yet
    checked against the paper's equations; for that reason the budget B (whose scale the
    summary leaves unclear: "B ≈ 0.9–1.2 in practice" reads as a per-layer ratio) and the
    steepness κ are REQUIRED arguments with no default.

    Not differentiable: a construction computed once between the two training stages
    (reference-only).

    Args:
        alpha: (L, K) the learned layer-wise coefficients α of the first stage (after the
            sigmoid; their absolute value is used), float32/float64.
        task_vector_magnitudes: (L, K) ``s_{ℓ,k} = mean|τ_{k,ℓ}|``, the mean absolute entry
            of expert k's task vector in layer ℓ, ≥ 0, same dtype.
        parameter_counts: (L,) integer n_ℓ ≥ 1, the number of entries of layer ℓ.
        budget: B ≥ 0, the total number of chunks to distribute (required: scale unpinned).
        kappa: κ ≥ 0, the steepness of the allocation (required: no published default).

    Returns:
        importance: (L,) I_ℓ, summing to 1, dtype of ``alpha``.
        chunks: (L,) int64 chunk counts m_ℓ ≥ 0.

    Reference: Zhang et al., arXiv:2509.25712 (Expert Merging++, importance-guided layer
    chunking); official code Littleor/ExpertMerging (chunk counts as input, ``torch.chunk``).

    >>> import numpy as np, refimpl
    >>> alpha = np.array([[0.5], [0.25], [0.25]])              # L = 3 layers, K = 1 expert
    >>> s = np.array([[1.0], [1.0], [2.0]])
    >>> importance, chunks = refimpl.merging.expert_merging_pp_chunk_allocation(
    ...     alpha, s, np.array([10, 20, 10]), budget=8, kappa=1.0)
    >>> importance, chunks                                        # w = 5, 5, 5
    (array([0.33333333, 0.33333333, 0.33333333]), array([2, 2, 2]))
    """
    weights = (np.abs(alpha.astype(np.float64)) * task_vector_magnitudes).sum(axis=1) * parameter_counts
    importance = weights / weights.sum()  # ℓ1 normalization across layers
    powered = importance**kappa  # 0^0 = 1: κ = 0 is the uniform split
    chunks = np.floor(budget * powered / powered.sum()).astype(np.int64)
    return (importance.astype(alpha.dtype), chunks), None
