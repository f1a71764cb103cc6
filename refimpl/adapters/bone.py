"""Bone's block-affine adapter, its unmerge, and the shared-block adapter MiSS (Bone paper)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, array_namespace, op

__all__ = ["bone_block_affine", "bone_unmerge", "miss_shared_block"]

PAPER = Paper(
    "Bone: Block Affine Transformation as Parameter Efficient Fine-tuning Methods for Large Language Models",
    arxiv="2409.15371",
    year=2024,
    code="JL-er/Bone",
)


def _check_blocks(weight_name: str, weight, B) -> None:
    """``W`` splits into r × r blocks and ``B`` holds one block per row-block of W."""
    out_features, in_features = weight.shape
    blocks, rank, _ = B.shape
    if out_features % rank or in_features % rank:
        raise ArgumentError(
            weight_name,
            f"a weight that splits into r × r blocks, r = {rank} (from B): out % r = 0 and in % r = 0",
            f"shape {(out_features, in_features)}",
        )
    if blocks != out_features // rank:
        raise ArgumentError(
            "B",
            f"one r × r block per row-block of {weight_name}: shape (out/r, r, r) = "
            f"({out_features // rank}, {rank}, {rank})",
            f"shape {tuple(B.shape)}",
        )


def _check_block_affine(arguments) -> None:
    _check_blocks("W", arguments["W"], arguments["B"])


def _check_unmerge(arguments) -> None:
    B = arguments["B"]
    _check_blocks("W_merged", arguments["W_merged"], B)
    # I + B_a must be invertible: numpy.linalg.matrix_rank's rule, σ_min <= σ_max·r·eps
    xp = array_namespace(B)
    rank = B.shape[-1]
    singular_values = xp.linalg.svd(xp.eye(rank, dtype=B.dtype) + B, compute_uv=False)
    smallest, largest = singular_values[:, -1], singular_values[:, 0]
    singular = smallest <= largest * (rank * float(np.finfo(B.dtype).eps))
    if bool(xp.any(singular)):
        block = int(xp.argmax(singular))
        raise ArgumentError(
            "B",
            "blocks with I + B_a invertible (the merge W_{a,j}(I + B_a) + B_a cannot be undone otherwise)",
            f"I + B_{block} singular to working precision "
            f"(σ_min = {float(smallest[block]):.3g}, σ_max = {float(largest[block]):.3g})",
        )


def _row_segments(weight, rank):
    """``weight`` (out, in) viewed as (out/r, r·in/r, r): row-block a, then its r-wide row segments.

    Row (p, j) of slab a is ``weight[a·r + p, j·r:(j + 1)·r]``, the p-th row of block ``W_{a,j}``;
    a plain reshape, no copy. Right-multiplying slab a by ``B_a`` multiplies every block
    ``W_{a,j}`` of row-block a by ``B_a``.
    """
    out_features = weight.shape[0]
    return weight.reshape(out_features // rank, -1, rank)


def _as_blocks(weight, rank):
    """``weight`` (out, in) viewed as (out/r, r, in/r, r): ``[a, p, j, q] = W_{a,j}[p, q]``."""
    out_features, in_features = weight.shape
    return weight.reshape(out_features // rank, rank, in_features // rank, rank)


@op(
    inputs={
        "x": FloatArray("...", "I"),
        "W": FloatArray("O", "I"),
        "B": FloatArray("NB", "R", "R"),
        "bias": FloatArray("O", optional=True),
    },
    outputs=("y",),
    differentiable=("x", "B"),
    check=_check_block_affine,
)
def bone_block_affine(x, W, B, bias=None):
    r"""Bone's block-affine layer: every r × r block of W is updated by ``W_{a,j} B_a + B_a``.

    Bone splits the frozen weight W (out, in) into r × r blocks ``W_{a,j}`` (a = row-block,
    j = column-block) and learns one r × r matrix ``B_a`` per row-block, shared by every
    block of that row. The update ``ΔW_{a,j} = W_{a,j} B_a + B_a`` is a *block affine*
    transformation of the block itself, so the weight guides its own update (the paper's
    "weight guide"); with ``B = 0`` (the initialization) the layer is the base layer. This is
    the paper's "Block Affine Transformation", huggingface/peft's Bone/MiSS tuner with
    ``init_weights="bat"``.

    Forward, with ``r`` read from B (out % r = 0 and in % r = 0)::

        W'_{a,j} = W_{a,j} + W_{a,j} B_a + B_a = W_{a,j}(I + B_a) + B_a
        y        = x W'ᵀ + b                       (torch layout, W' (out, in))

    The code never loops over blocks: viewing W as (out/r, r·in/r, r) ("row segments": slab
    a holds the r-wide rows of the blocks ``W_{a,1..in/r}``) makes ``W_{a,j} B_a`` for all j
    one batched product ``slab_a @ B_a``; ``+ B_a`` adds ``B_a[p, q]`` to entry
    ``(a·r + p, j·r + q)`` for every j. W' is formed once (PEFT's forward does the same) and
    kept as the residual.

    Backward. Let ``g = ∂L/∂y`` (rows g_t) and ``G = ∂L/∂W' = Σ_t g_t x_tᵀ`` (out, in), with
    blocks ``G_{a,j}``. W and b are frozen and get no cotangent.

    1. ``y_t = W' x_t + b``: ``x̄_t = W'ᵀ g_t``, i.e. ``x̄ = g W'``.
    2. Entry ``(p, q)`` of ``W'_{a,j}`` is ``W_{a,j}[p, q] + Σ_m W_{a,j}[p, m] B_a[m, q] + B_a[p, q]``,
       so ``∂W'_{a,j}[p, q]/∂B_a[k, l] = W_{a,j}[p, k]·δ_{ql} + δ_{pk}·δ_{ql}``.
    3. Summing ``G_{a,j}[p, q]`` times that over p, q and over every block j that shares ``B_a``:
       ``B̄_a[k, l] = Σ_j (Σ_p W_{a,j}[p, k] G_{a,j}[p, l] + G_{a,j}[k, l])``, i.e.
       ``B̄_a = Σ_j (W_{a,j}ᵀ G_{a,j} + G_{a,j})``.
    4. ``Σ_j W_{a,j}ᵀ G_{a,j}`` sums over every row segment of slab a: it is one product
       ``slab_a(W)ᵀ @ slab_a(G)`` (r, r) per row-block; ``Σ_j G_{a,j}`` sums G's blocks along j.

    So ``x̄ = g W'`` and ``B̄_a = slab_a(W)ᵀ slab_a(G) + Σ_j G_{a,j}`` with ``G = gᵀ x``.

    Args:
        x: input (..., in), float32 or float64; any number of leading (batch) dimensions.
        W: frozen weight (out, in), torch layout ``y = x Wᵀ``; out and in multiples of r.
        B: trainable blocks (out/r, r, r) (PEFT's ``bone_block`` / ``miss_block`` with
            ``init_weights="bat"``, initialized to 0); r is its last size (official default r = 64).
        bias: frozen bias (out,), or None.

    Returns:
        y: (..., out), the dtype of x.

    Reference: *Bone: Block Affine Transformation as Parameter Efficient
    Fine-tuning Methods for Large Language Models*, arXiv:2409.15371 (the method was later
    renamed MiSS); layout pinned from huggingface/peft ``src/peft/tuners/bone/layer.py``
    (``BoneLinear.get_delta_weight``: ``W.reshape(out/r, r, in/r, r).permute(2, 0, 1, 3) @ B + B``,
    permuted back) and ``src/peft/tuners/miss/layer.py`` (``MissLinear.get_delta_weight``, the same).

    >>> import numpy as np, refimpl
    >>> W = np.array([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 2.0]])   # blocks I and 2I, r = 2
    >>> B = np.array([[[0.0, 1.0], [0.0, 0.0]]])                      # ΔW = [2 B_0, 3 B_0]
    >>> refimpl.adapters.bone_block_affine(np.ones(4), W, B)           # W' = [[1,2,2,3],[0,1,0,2]]
    array([8., 3.])
    """
    rank = B.shape[-1]
    slabs = _row_segments(W, rank)  # (out/r, r·in/r, r)
    delta = _as_blocks((slabs @ B).reshape(W.shape), rank) + B[:, :, None, :]  # W_{a,j} B_a + B_a
    W_merged = W + delta.reshape(W.shape)
    y = x @ W_merged.T
    if bias is not None:
        y = y + bias
    return y, (x, W, W_merged, rank)


@bone_block_affine.defvjp
def bone_block_affine_backward(residuals, g_y):
    x, W, W_merged, rank = residuals
    g_rows = g_y.reshape(-1, W.shape[0])
    x_rows = x.reshape(-1, W.shape[1])
    g_x = g_rows @ W_merged
    G = g_rows.T @ x_rows  # ∂L/∂W', (out, in)
    g_B = _row_segments(W, rank).transpose(0, 2, 1) @ _row_segments(G, rank)  # Σ_j W_{a,j}ᵀ G_{a,j}
    g_B = g_B + _as_blocks(G, rank).sum(axis=2)  # + Σ_j G_{a,j}
    return g_x.reshape(x.shape), g_B


@op(
    inputs={"W_merged": FloatArray("O", "I"), "B": FloatArray("NB", "R", "R")},
    outputs=("W",),
    check=_check_unmerge,
)
def bone_unmerge(W_merged, B):
    r"""Undo a Bone block-affine merge: ``W_{a,j} = (W'_{a,j} − B_a)(I + B_a)⁻¹`` for every block.

    Merging Bone into the weight (``W' = W + ΔW``, see ``bone_block_affine``) is invertible
    whenever every ``I + B_a`` is: ``W'_{a,j} − B_a = W_{a,j}(I + B_a)``, so the original
    weight is recovered blockwise by a right division. A singular ``I + B_a`` (to working
    precision: ``σ_min <= σ_max·r·eps``, NumPy's ``matrix_rank`` rule) is refused, because
    the merged weight no longer determines W there.

    Forward. With slab a of the row segments (see ``bone_block_affine``), every row segment
    ``w`` of row-block a satisfies ``w (I + B_a) = w' − (the matching row of B_a)``. Right
    division is a transposed solve, ``X (I + B_a) = C  ⇔  (I + B_a)ᵀ Xᵀ = Cᵀ``: one LU solve
    per row-block with all its r·in/r segments as right-hand sides (no explicit inverse;
    PEFT forms ``torch.inverse`` in float32). Computed in the input dtype (float32 or float64).

    Not differentiable: a conversion of stored weights.

    Args:
        W_merged: the merged weight W' (out, in); out and in multiples of r.
        B: the blocks (out/r, r, r) that were merged.

    Returns:
        W: (out, in), the weight before the merge, in the dtype of W_merged.

    Reference: *Bone* (MiSS), arXiv:2409.15371; huggingface/peft ``src/peft/tuners/bone/layer.py``
    (``BoneLinear.get_delta_weight(..., re=True)``) and ``src/peft/tuners/miss/layer.py``
    (``MissLinear.get_delta_weight(..., reverse=True)``).

    >>> import numpy as np, refimpl
    >>> W_merged = np.array([[1.0, 2.0, 2.0, 3.0], [0.0, 1.0, 0.0, 2.0]])
    >>> refimpl.adapters.bone_unmerge(W_merged, np.array([[[0.0, 1.0], [0.0, 0.0]]]))
    array([[1., 0., 2., 0.],
           [0., 1., 0., 2.]])
    """
    rank = B.shape[-1]
    right_sides = _as_blocks(W_merged, rank) - B[:, :, None, :]  # C_{a,j} = W'_{a,j} − B_a
    slabs = right_sides.reshape(B.shape[0], -1, rank)  # (out/r, r·in/r, r)
    system = np.eye(rank, dtype=B.dtype) + B  # I + B_a
    # X (I + B_a) = C  ⇔  (I + B_a)ᵀ Xᵀ = Cᵀ, all row segments of slab a at once
    W = np.linalg.solve(system.transpose(0, 2, 1), slabs.transpose(0, 2, 1)).transpose(0, 2, 1)
    return W.reshape(W_merged.shape), None


@op(
    inputs={
        "x": FloatArray("...", "I"),
        "W": FloatArray("O", "I"),
        "B": FloatArray("R", "O"),
        "bias": FloatArray("O", optional=True),
    },
    outputs=("y",),
    differentiable=("x", "B"),
)
def miss_shared_block(x, W, B, bias=None):
    r"""MiSS (PEFT Bone's default): one trainable (r, out) block tiled across the input.

    The shard-sharing adapter learns a single matrix ``B`` (r, out) and adds it to every
    r-wide column slice of the weight: ``ΔW[o, j·r + c] = B[c, o]`` for every column block
    j (the last block is cut at ``in``). Because the same shard is repeated, ``x ΔWᵀ`` never
    needs ΔW: it is ``s B`` with the input first folded onto r coordinates, ``s_c = Σ_j
    x[j·r + c]`` (x zero-padded to a multiple of r), a cost of O(in + r·out) per row instead
    of O(in·out). With ``B = 0`` (PEFT's ``init_weights=True``) the layer is the base layer.

    Forward, per row x::

        s = Σ_j x_pad[j·r:(j + 1)·r]      (r,)   x_pad: x zero-padded to ⌈in/r⌉·r
        y = x Wᵀ + s B + b                (out,)

    Backward. Let ``g = ∂L/∂y`` (rows g_t, T rows). W and b are frozen.

    1. ``y`` depends on B through ``s B``: ``∂y_o/∂B_co = s_c``, so ``B̄ = Σ_t s_tᵀ g_t = Sᵀ g``
       (r, out), with S the stacked s (the forward's residual).
    2. ``s̄_t = g_t Bᵀ`` (r,).
    3. ``s_c`` sums the inputs ``x[i]`` with ``i mod r = c``: ``∂s_c/∂x_i = 1[i mod r = c]``,
       so the fold's adjoint tiles ``s̄`` back over the input: ``x̄_t[i] = s̄_t[i mod r]``
       (padding positions are dropped).
    4. Adding the base path: ``x̄_t = g_t W + tile(g_t Bᵀ)[:in]``.

    Args:
        x: input (..., in), float32 or float64; any number of leading (batch) dimensions.
        W: frozen weight (out, in), torch layout.
        B: the trainable shard (r, out) (PEFT's ``bone_block`` / ``miss_block`` with
            ``init_weights=True``, initialized to 0); any r >= 1, in need not be a multiple of r
            (official default r = 64).
        bias: frozen bias (out,), or None.

    Returns:
        y: (..., out), the dtype of x.

    Reference: *Bone* (MiSS), arXiv:2409.15371; huggingface/peft
    ``src/peft/tuners/miss/layer.py`` (``MissLinear.forward``: ``F.pad`` to a multiple of r,
    ``torch.sum(x.reshape(..., in/r, r), dim=-2) @ miss_block``; ``get_delta_weight_miss`` for
    the tiled ``ΔW``) and ``src/peft/tuners/bone/layer.py`` (the same under Bone). PEFT's
    optional ``miss_dropout`` on x before the fold is not part of this op (dropout 0, its default).

    >>> import numpy as np, refimpl
    >>> x = np.array([1.0, 2.0, 3.0])                           # padded [1, 2, 3, 0]: s = [4, 2]
    >>> W = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])        # x Wᵀ = [1, 3]
    >>> refimpl.adapters.miss_shared_block(x, W, np.array([[1.0, 0.0], [0.0, -1.0]]))
    array([5., 1.])
    """
    rank = B.shape[0]
    in_features = W.shape[1]
    padding = -in_features % rank
    x_padded = np.concatenate([x, np.zeros((*x.shape[:-1], padding), dtype=x.dtype)], axis=-1)
    s = x_padded.reshape(*x.shape[:-1], -1, rank).sum(axis=-2)  # fold onto r coordinates
    y = x @ W.T + s @ B
    if bias is not None:
        y = y + bias
    return y, (x, W, B, s)


@miss_shared_block.defvjp
def miss_shared_block_backward(residuals, g_y):
    x, W, B, s = residuals
    rank, out_features = B.shape
    in_features = W.shape[1]
    g_rows = g_y.reshape(-1, out_features)
    s_rows = s.reshape(-1, rank)
    g_B = s_rows.T @ g_rows
    g_s = g_rows @ B.T  # s̄ = g Bᵀ, (T, r)
    blocks = -(-in_features // rank)
    g_x = g_rows @ W + np.tile(g_s, blocks)[:, :in_features]  # the fold's adjoint tiles s̄
    return g_x.reshape(x.shape), g_B
