"""Weight matching: permute two MLPs' hidden units into alignment, then interpolate (Ito et al.)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..authoring import (
    ArgumentError,
    FloatArray,
    FloatArrays,
    InputError,
    IntArray,
    IntScalar,
    Paper,
    RealScalar,
    StateDict,
    op,
)

__all__ = [
    "IMPROVEMENT",
    "PAPER",
    "apply_permutation",
    "interpolate_params",
    "matching_objective",
    "permute_mlp",
    "weight_matching",
]
EXPORTS = ("permute_mlp", "matching_objective")

PAPER = Paper(
    "Analysis of Linear Mode Connectivity via Permutation-Based Weight Matching",
    arxiv="2402.04051",
    year=2024,
    code="samuela/git-re-basin",
)

#: a step makes progress when it raises the objective by more than this (absolute), as in the
#: official ``weight_matching`` (``progress = newL > oldL + 1e-12``)
IMPROVEMENT = 1e-12


# -- helpers over a whole MLP -----------------------------------------------------------------
def _hidden_widths(weights) -> list[int]:
    return [int(w.shape[0]) for w in weights[:-1]]


def _split(permutation, widths) -> list[np.ndarray]:
    bounds = np.cumsum([0, *widths])
    return [permutation[bounds[h] : bounds[h + 1]] for h in range(len(widths))]


def _layer_permutations(perms, layer: int, layers: int):
    """(rows, columns) of layer ``layer``: its own hidden units and the previous layer's."""
    rows = perms[layer] if layer < layers - 1 else None
    columns = perms[layer - 1] if layer > 0 else None
    return rows, columns


def _permute_layer(weight, bias, rows, columns):
    if rows is not None:
        weight, bias = weight[rows], bias[rows]
    if columns is not None:
        weight = weight[:, columns]
    return weight, bias


def matching_objective(weights_a, biases_a, weights_b, biases_b, permutation) -> float:
    """``J(π) = Σ_l ⟨W_l^A, π(W^B)_l⟩_F + Σ_l ⟨b_l^A, π(b^B)_l⟩`` in float64: the quantity weight
    matching maximizes (``‖θ_A − π(θ_B)‖² = ‖θ_A‖² + ‖θ_B‖² − 2J``). ``permutation``: the
    hidden-layer permutations concatenated, as :func:`weight_matching` returns them.

    >>> w = [np.array([[1.0], [2.0]]), np.array([[1.0, 3.0]])]
    >>> b = [np.zeros(2), np.zeros(1)]
    >>> matching_objective(w, b, w, b, np.array([0, 1])), matching_objective(w, b, w, b, np.array([1, 0]))
    (15.0, 10.0)
    """
    perms = _split(np.asarray(permutation), _hidden_widths(weights_a))
    total = 0.0
    layers = len(weights_a)
    for layer in range(layers):
        rows, columns = _layer_permutations(perms, layer, layers)
        weight_b, bias_b = _permute_layer(weights_b[layer], biases_b[layer], rows, columns)
        total += float(np.vdot(np.asarray(weights_a[layer], np.float64), np.asarray(weight_b, np.float64)))
        total += float(np.vdot(np.asarray(biases_a[layer], np.float64), np.asarray(bias_b, np.float64)))
    return total


def permute_mlp(weights, biases, permutation):
    """π(θ) for a whole MLP: every layer through :func:`apply_permutation` (rows of ``W_l`` and
    ``b_l`` by P_l, columns of ``W_{l+1}`` by P_l); ``permutation`` is the hidden-layer
    permutations concatenated (:func:`weight_matching`'s output). Returns new lists
    ``(weights, biases)``; the input and output units keep their order.

    >>> w = [np.array([[1.0], [2.0]]), np.array([[3.0, 4.0]])]
    >>> b = [np.array([0.5, -0.5]), np.array([0.0])]
    >>> weights, biases = permute_mlp(w, b, np.array([1, 0]))
    >>> weights[0].ravel().tolist(), biases[0].tolist(), weights[1].tolist()
    ([2.0, 1.0], [-0.5, 0.5], [[4.0, 3.0]])
    """
    if not isinstance(weights, list | tuple) or not isinstance(biases, list | tuple):
        raise InputError("permute_mlp: expected the weights and the biases as lists of arrays")
    if len(weights) != len(biases) or len(weights) < 1:
        raise InputError(
            f"permute_mlp: expected one bias per weight matrix, got {len(weights)} weights and "
            f"{len(biases)} biases"
        )
    widths = _hidden_widths(weights)
    permutation = np.asarray(permutation)
    if permutation.ndim != 1 or permutation.shape[0] != sum(widths):
        raise InputError(
            f"permute_mlp: argument 'permutation': expected the hidden-layer permutations "
            f"concatenated, shape ({sum(widths)},) for hidden widths {widths}, got shape "
            f"{permutation.shape}"
        )
    perms = _split(permutation, widths)
    new_weights, new_biases = [], []
    for layer in range(len(weights)):
        rows, columns = _layer_permutations(perms, layer, len(weights))
        weight, bias = apply_permutation(weights[layer], biases[layer], rows, columns)
        new_weights.append(weight)
        new_biases.append(bias)
    return new_weights, new_biases


# -- weight matching --------------------------------------------------------------------------
def _check_mlps(arguments) -> None:
    order = arguments["sweep_order"]
    pairs = (
        ("a", arguments["weights_a"], arguments["biases_a"]),
        ("b", arguments["weights_b"], arguments["biases_b"]),
    )
    layers = len(pairs[0][1])
    if layers < 2:
        raise ArgumentError(
            "weights_a", "at least 2 layers (a hidden layer whose units can be permuted)", f"{layers} layer"
        )
    for side, weights, biases in pairs:
        for layer, weight in enumerate(weights):
            if layer > 0 and weight.shape[1] != weights[layer - 1].shape[0]:
                raise ArgumentError(
                    f"weights_{side}[{layer}]",
                    f"{weights[layer - 1].shape[0]} columns, the outputs of weights_{side}[{layer - 1}] "
                    "(W_l has shape (d_l, d_{l−1}))",
                    f"shape {tuple(weight.shape)}",
                )
            if tuple(biases[layer].shape) != (weight.shape[0],):
                raise ArgumentError(
                    f"biases_{side}[{layer}]",
                    f"shape ({weight.shape[0]},), the rows of weights_{side}[{layer}]",
                    f"shape {tuple(biases[layer].shape)}",
                )
    for layer, (weight_a, weight_b) in enumerate(zip(pairs[0][1], pairs[1][1], strict=True)):
        if weight_a.shape != weight_b.shape:
            raise ArgumentError(
                f"weights_b[{layer}]",
                f"shape {tuple(weight_a.shape)} like weights_a[{layer}] (the same architecture)",
                f"shape {tuple(weight_b.shape)}",
            )
    if order.shape[1] != layers - 1:
        raise ArgumentError(
            "sweep_order",
            f"{layers - 1} columns, one per hidden layer (L − 1 = {layers - 1} for L = {layers} layers)",
            f"shape {tuple(order.shape)}",
        )
    identity = np.arange(order.shape[1])
    for row, sweep in enumerate(order):
        if not np.array_equal(np.sort(sweep), identity):
            raise ArgumentError(
                "sweep_order",
                f"rows that are permutations of 0..{order.shape[1] - 1} (each hidden layer once per sweep)",
                f"row {row} = {sweep.tolist()}",
            )


def _cost(hidden, perms, weights_a, biases_a, weights_b, biases_b):
    """``C = W_h^A P_{h−1} W_h^{Bᵀ} + W_{h+1}^{Aᵀ} P_{h+1} W_{h+1}^B + b_h^A b_h^{Bᵀ}`` (float64)."""
    layers = len(weights_a)
    incoming = weights_b[hidden] if hidden == 0 else weights_b[hidden][:, perms[hidden - 1]]
    cost = weights_a[hidden] @ incoming.T + np.outer(biases_a[hidden], biases_b[hidden])
    outgoing = weights_b[hidden + 1] if hidden + 1 == layers - 1 else weights_b[hidden + 1][perms[hidden + 1]]
    return cost + weights_a[hidden + 1].T @ outgoing


@op(
    inputs={
        "weights_a": FloatArrays(2, "L"),
        "biases_a": FloatArrays(1, "L"),
        "weights_b": FloatArrays(2, "L"),
        "biases_b": FloatArrays(1, "L"),
        "sweep_order": IntArray("S", "H", low=0, high="H"),
        "max_iter": IntScalar(1),
    },
    outputs=("permutation", "objective"),
    check=_check_mlps,
)
def weight_matching(weights_a, biases_a, weights_b, biases_b, sweep_order, *, max_iter=100):
    r"""Weight matching: permute the hidden units of MLP B to bring its weights closest to MLP A's.

    A hidden unit's identity is arbitrary: permuting the units of a hidden layer (the rows of
    ``W_l`` and ``b_l`` and, to match, the columns of ``W_{l+1}``) gives a network computing
    the same function. Two networks trained from different seeds differ by such a
    permutation (and more); undoing it before averaging (Git Re-Basin) makes the linear path
    between them low-loss ("linear mode connectivity"). Weight matching picks the
    permutations π = (P_1, …, P_{L−1}) that maximize the alignment of the weights::

        J(π) = Σ_l ⟨W_l^A, P_l W_l^B P_{l−1}ᵀ⟩_F + Σ_l ⟨b_l^A, P_l b_l^B⟩       (P_0 = P_L = I)

    i.e. minimize ``‖θ_A − π(θ_B)‖²``. Ito et al. show the found permutations align the
    singular vectors of large singular values layer by layer (singular values themselves are
    permutation invariant), which is what makes the merged model work.

    Forward: coordinate ascent, one hidden layer at a time, each step solved exactly. With
    the other permutations fixed, J is linear in P_h: ``J = ⟨C_h, P_h⟩ + const`` with::

        C_h = W_h^A P_{h−1} W_h^{Bᵀ} + W_{h+1}^{Aᵀ} P_{h+1} W_{h+1}^B + b_h^A b_h^{Bᵀ}   (d_h × d_h)

    and ``max_P ⟨C_h, P⟩`` is a linear assignment problem (SciPy's
    ``linear_sum_assignment(C, maximize=True)``, exact). Starting from identities::

        for iteration i = 0, 1, …, max_iter − 1:
            for h in sweep_order[i mod S]:                 (each hidden layer once)
                P_h ← argmax_P ⟨C_h, P⟩;  progress if ⟨C_h, P_new⟩ > ⟨C_h, P_old⟩ + 1e-12
            stop when no step of the sweep made progress

    as in the official ``weight_matching`` (the new assignment is taken even without
    progress; the threshold is absolute). J never decreases. The cost matrices and J are
    computed in float64 whatever the dtype: the assignment is discrete, and a rounding must
    not flip it (the official JAX code computes them in float32). Exact ties between
    assignments are broken by SciPy's solver; another solver may pick another optimum of the
    same J.

    Sweep order. The official code visits the hidden layers in a fresh random order every
    iteration; here the order is an input: ``sweep_order`` (S, H) holds one order per row,
    iteration i uses row ``i mod S`` (one row: the same order every sweep; max_iter rows:
    one drawn order per iteration, as officially).

    Not differentiable (a combinatorial search).

    Args:
        weights_a: MLP A's weights ``W_l`` (d_l, d_{l−1}), l = 1..L (L >= 2), float32/64.
        biases_a: its biases ``b_l`` (d_l,).
        weights_b: MLP B's weights, the same shapes (B is the model that gets permuted).
        biases_b: its biases.
        sweep_order: (S, H) int, H = L − 1: each row a permutation of the hidden layers
            0..H−1 (0 is the output of the first layer).
        max_iter: the most sweeps (default 100, the official ``max_iter``).

    Returns:
        permutation: int64, the hidden-layer permutations concatenated (layer h's block at
            offset d_1 + … + d_h): ``perm_h[i]`` is the unit of B matched to unit i of A, so
            π(θ_B) has ``W_h^B[perm_h][:, perm_{h−1}]`` (:func:`permute_mlp`,
            :func:`apply_permutation`).
        objective: J before the first step and after every step (1 + sweeps·H values,
            non-decreasing), in the dtype of the weights.

    Reference: Ito, Yamada, Kumagai, *Analysis of Linear Mode Connectivity via
    Permutation-Based Weight Matching*, arXiv:2402.04051; Ainsworth, Hayase, Srinivasa,
    *Git Re-Basin*, ICLR 2023 (Algorithm 1); official code samuela/git-re-basin,
    ``src/weight_matching.py`` (``weight_matching``: the cost ``A``, ``linear_sum_assignment``,
    ``newL > oldL + 1e-12``, ``max_iter=100``).

    >>> import numpy as np, refimpl
    >>> w_a = [np.array([[1.0], [-2.0], [3.0]]), np.array([[1.0, 2.0, 3.0]])]   # 1 → 3 → 1 units
    >>> b_a = [np.array([0.1, 0.2, 0.3]), np.array([0.0])]
    >>> w_b = [w_a[0][[2, 0, 1]], w_a[1][:, [2, 0, 1]]]                      # B: A's units shuffled
    >>> b_b = [b_a[0][[2, 0, 1]], b_a[1]]
    >>> perm, objective = refimpl.merging.weight_matching(w_a, b_a, w_b, b_b, np.array([[0]]))
    >>> perm, objective.round(2)      # unit i of A is unit perm[i] of B; J rises to ‖θ_A‖²
    (array([1, 2, 0]), array([ 6.11, 28.14, 28.14]))
    """
    dtype = weights_a[0].dtype
    as64 = lambda arrays: [np.asarray(x, dtype=np.float64) for x in arrays]  # noqa: E731
    weights_a, biases_a, weights_b, biases_b = map(as64, (weights_a, biases_a, weights_b, biases_b))
    perms = [np.arange(width) for width in _hidden_widths(weights_a)]
    objective = [matching_objective(weights_a, biases_a, weights_b, biases_b, np.concatenate(perms))]
    for iteration in range(max_iter):
        progress = False
        for hidden in sweep_order[iteration % sweep_order.shape[0]]:
            cost = _cost(hidden, perms, weights_a, biases_a, weights_b, biases_b)
            rows, columns = linear_sum_assignment(cost, maximize=True)  # rows = 0..d_h − 1
            old = cost[rows, perms[hidden]].sum()
            new = cost[rows, columns].sum()
            progress = progress or bool(new > old + IMPROVEMENT)
            perms[hidden] = columns  # taken even without progress, as officially
            objective.append(
                matching_objective(weights_a, biases_a, weights_b, biases_b, np.concatenate(perms))
            )
        if not progress:
            break
    permutation = np.concatenate(perms).astype(np.int64)
    return (permutation, np.array(objective, dtype=dtype)), None


# -- applying a permutation -------------------------------------------------------------------
def _check_permutations(arguments) -> None:
    for name in ("row_permutation", "column_permutation"):
        given = arguments[name]
        if given is not None and np.unique(given).shape[0] != given.shape[0]:
            values, counts = np.unique(given, return_counts=True)
            raise ArgumentError(
                name,
                f"a permutation of 0..{given.shape[0] - 1} (every index once)",
                f"{int(values[counts > 1][0])} repeated",
            )


@op(
    inputs={
        "weight": FloatArray("O", "I"),
        "bias": FloatArray("O"),
        "row_permutation": IntArray("O", low=0, high="O", optional=True),
        "column_permutation": IntArray("I", low=0, high="I", optional=True),
    },
    outputs=("permuted_weight", "permuted_bias"),
    check=_check_permutations,
)
def apply_permutation(weight, bias, row_permutation=None, column_permutation=None):
    r"""Permute one layer of an MLP: its output units (rows of W and b) and its input units
    (columns of W).

    Layer l of π(θ) is ``P_l W_l P_{l−1}ᵀ`` and ``P_l b_l``: its rows follow the
    permutation of its own hidden layer, its columns that of the layer before. With
    ``perm[i]`` the old index of new unit i (``P[i, perm[i]] = 1``)::

        W'[i, j] = W[row_permutation[i], column_permutation[j]],     b'[i] = b[row_permutation[i]]

    For a whole MLP, layer l takes ``(perm_l, perm_{l−1})``, the first layer no column
    permutation and the last no row permutation (None: identity): :func:`permute_mlp` does
    it from :func:`weight_matching`'s concatenated output, and the network computes the same
    function (for any elementwise activation). An op returns one array per output, so the
    op is per layer; ``permute_mlp`` returns the lists.

    Not differentiable (an exact re-indexing).

    Args:
        weight: W (O, I), float32 or float64.
        bias: b (O,), same dtype.
        row_permutation: (O,) int, a permutation of 0..O−1, or None (identity).
        column_permutation: (I,) int, a permutation of 0..I−1, or None (identity).

    Returns:
        permuted_weight: W' (O, I), a new array.
        permuted_bias: b' (O,), a new array.

    Reference: arXiv:2402.04051; official code samuela/git-re-basin,
    ``src/weight_matching.py`` (``get_permuted_param``: ``jnp.take(w, perm[p], axis)``).

    >>> import numpy as np, refimpl
    >>> w, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([5.0, 6.0])
    >>> refimpl.merging.apply_permutation(w, b, np.array([1, 0]), np.array([1, 0]))
    (array([[4., 3.],
           [2., 1.]]), array([6., 5.]))
    """
    permuted_weight, permuted_bias = _permute_layer(weight, bias, row_permutation, column_permutation)
    return (np.array(permuted_weight), np.array(permuted_bias)), None


# -- interpolation ----------------------------------------------------------------------------
@op(
    inputs={"theta_a": FloatArray("..."), "theta_b": FloatArray("..."), "lam": RealScalar(0, 1)},
    outputs=("theta",),
    state_dict=StateDict({"theta_a": "tensor", "theta_b": "tensor"}, outputs=("theta",)),
)
def interpolate_params(theta_a, theta_b, *, lam=0.5):
    r"""The point at λ on the straight line between two models: ``θ = (1 − λ)θ_A + λθ_B``.

    After weight matching, θ_B is replaced by π(θ_B) (:func:`permute_mlp`); the loss along
    ``λ ∈ [0, 1]`` then shows whether the two models are linearly mode connected (no
    barrier), and λ = 1/2 is the merged model.

    Forward, elementwise in the dtype, in the official order (``(1 − lam)·a + lam·b``)::

        θ = (1 − λ)·θ_A + λ·θ_B

    so λ = 0 gives θ_A and λ = 1 gives θ_B exactly.

    Not differentiable (a merge rule with a fixed λ).

    Whole models: ``interpolate_params(model_a, model_b, lam=...)`` with state dicts; integer
    buffers come from model A.

    Args:
        theta_a: parameter of model A, any shape, float32 or float64.
        theta_b: the matching parameter of (permuted) model B, same shape and dtype.
        lam: λ ∈ [0, 1] (default 0.5, the midpoint: the merged model).

    Returns:
        theta: shape and dtype of ``theta_a``.

    Reference: arXiv:2402.04051; official code samuela/git-re-basin (``lerp(lam, t1, t2) =
    (1 - lam) * t1 + lam * t2`` over the parameter tree).

    >>> import numpy as np, refimpl
    >>> refimpl.merging.interpolate_params(np.array([0.0, 2.0]), np.array([4.0, 2.0]), lam=0.25)
    array([1., 2.])
    """
    dtype = theta_a.dtype.type
    return np.asarray(dtype(1.0 - lam) * theta_a + dtype(lam) * theta_b, dtype=theta_a.dtype), None
