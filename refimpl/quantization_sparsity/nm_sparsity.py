"""N:M structured sparsity: masks, SR-STE and decaying gradient flow (MDGF), the SDGF schedule
(Progressive Gradient Flow for Robust N:M Sparsity Training in Transformers, Bambhaniya et al.)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    OneOf,
    Paper,
    RealScalar,
    known_deviation,
    op,
)

__all__ = ["PAPER", "nm_mask", "nm_sparse_weight", "sdgf_schedule"]

PAPER = Paper(
    "Progressive Gradient Flow for Robust N:M Sparsity Training in Transformers",
    arxiv="2402.04744",
    year=2024,
    code="abhibambhaniya/progressive_gradient_flow_nm_sparsity",
)

VARIANTS = ("sr_ste", "step", "mdgf_linear", "mdgf_exp")


def _check_groups(arguments) -> None:
    """N ≤ M; conv weights of rank 4; the grouped axis a multiple of M."""
    W, N, M, conv = arguments["W"], arguments["N"], arguments["M"], arguments["conv"]
    if N > M:
        raise ArgumentError("N", f"at most M = {M} weights kept per group", f"N = {N}")
    if conv and W.ndim != 4:
        raise ArgumentError(
            "W", "a convolution weight (out, in, kh, kw) of rank 4 when conv=True", f"shape {tuple(W.shape)}"
        )
    length = W.shape[1] if conv else W.shape[-1]
    axis = "input channels (axis 1)" if conv else "row length (last axis)"
    if length % M:
        raise ArgumentError(
            "W",
            f"a {axis} divisible by M = {M} (groups of M consecutive weights never cross a row)",
            f"{length} in shape {tuple(W.shape)}",
        )


def rows_of_groups(W, conv: bool) -> np.ndarray:
    """The weights as (groups, M)-ready rows: the grouped axis last (a conv weight
    (out, in, kh, kw) is permuted to (out, kh, kw, in) first)."""
    return np.transpose(W, (0, 2, 3, 1)) if conv else W


def back_to_layout(rows, conv: bool) -> np.ndarray:
    """Undo :func:`rows_of_groups`."""
    return np.transpose(rows, (0, 3, 1, 2)) if conv else rows


def keep_mask(W, N: int, M: int, conv: bool) -> np.ndarray:
    """The N:M mask (True = kept) of ``W`` in its own layout.

    Within each group of M consecutive weights the M − N smallest |w| are pruned: the
    group's |w| are sorted ascending by a *stable* sort and its first M − N positions are
    pruned, so among equal magnitudes the lower index is pruned first.
    """
    rows = rows_of_groups(W, conv)
    groups = np.abs(rows).reshape(-1, M)
    order = np.argsort(groups, axis=1, kind="stable")
    keep = np.ones(groups.shape, dtype=bool)
    np.put_along_axis(keep, order[:, : M - N], False, axis=1)
    return np.ascontiguousarray(back_to_layout(keep.reshape(rows.shape), conv))


@op(
    inputs={
        "W": FloatArray("...", "K"),
        "N": IntScalar(1),
        "M": IntScalar(1),
        "conv": Flag(),
    },
    outputs=("mask",),
    check=_check_groups,
)
def nm_mask(W, *, N, M, conv=False):  # noqa: N803 - the paper's W, N, M
    r"""N:M mask: keep the N largest-magnitude weights in every group of M consecutive ones.

    N:M structured sparsity (2:4 on Ampere tensor cores) splits each row of a weight
    matrix along its input dimension into groups of M consecutive weights and keeps N of
    them. Magnitude pruning keeps the N largest ``|w|``; the mask is recomputed every
    training step from the dense weights, so weights can re-enter.

    Forward, per group ``g`` of M consecutive weights along the input dimension::

        order = stable_argsort(|w_g|)            (ascending)
        m_g[order[:M − N]] = 0,  m_g[rest] = 1

    Ties: the sort is stable, so among equal ``|w|`` the lower index comes first and is
    pruned first (in ``[1, 1, 1, 1]`` with 2:4, positions 0 and 1 are pruned). The
    official code zeroes the M − N smallest by ``torch.argsort`` (N is the number kept);
    an unstable GPU sort may break ties differently, the rule here is the stable one.

    Layout: a linear weight (out, in) is grouped along its last axis (any leading axes are
    rows). With ``conv=True`` a convolution weight (out, in, kh, kw) is grouped along the
    input channels, as the official code does by permuting it to (out, kh, kw, in) first;
    the mask comes back in the weight's own layout. The grouped axis must be a multiple of
    M (groups never cross rows; see the recorded deviation for the official code's
    behaviour otherwise).

    Not differentiable: a boolean output (no backward).

    Args:
        W: weights (..., K) (or (out, in, kh, kw) with ``conv=True``), float32/float64.
        N: weights kept per group, 1 ≤ N ≤ M.
        M: group size; K (the input channels for a conv weight) must be a multiple of M.
        conv: group a conv weight along its input channels (default False).

    Returns:
        mask: boolean array shaped like ``W``, True where the weight is kept; exactly N
        True per group.

    Reference: Bambhaniya et al., *Progressive Gradient Flow for Robust N:M Sparsity
    Training in Transformers*, arXiv:2402.04744; official code
    abhibambhaniya/progressive_gradient_flow_nm_sparsity
    (``timm/sparse_pruning/sparse_functions.py``, ``get_sparse_mask``); Zhou et al.,
    *Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch*, ICLR 2021.

    >>> import numpy as np, refimpl
    >>> W = np.array([[0.1, -0.9, 0.5, 0.2, 1.0, 1.0, 1.0, 1.0]])
    >>> refimpl.quantization_sparsity.nm_mask(W, N=2, M=4).astype(int)  # ties: lower index pruned
    array([[0, 1, 1, 0, 0, 0, 1, 1]])
    """
    return keep_mask(W, N, M, conv), None


known_deviation(
    nm_mask,
    name="nm-mask-groups-across-rows",
    source="abhibambhaniya/progressive_gradient_flow_nm_sparsity, timm/sparse_pruning/sparse_functions.py "
    "(get_sparse_mask)",
    official="reshapes the whole weight to (numel/M, M), so when the row length is not a multiple of M "
    "(but numel is) groups run across row boundaries: a 4×6 weight with 2:4 keeps 2, 4, 2, 4 entries "
    "in its rows",
    paper="groups of M consecutive weights within a row (the hardware's N:M pattern); a row length "
    "that is not a multiple of M is refused",
    example=Example(
        args=(np.arange(1.0, 25.0).reshape(4, 6),),
        kwargs={"N": 2, "M": 4},
        official={"mask.shape": [4, 6]},
        reference={"raises": "InputError"},
        note="official: rows keep 2, 4, 2, 4 weights; refimpl refuses the 6-long rows",
    ),
)


def _check_sparse_weight(arguments) -> None:
    _check_groups(arguments)
    variant, step, rate = arguments["variant"], arguments["step"], arguments["decay_rate"]
    if variant.startswith("mdgf"):
        for name, value in (("step", step), ("decay_rate", rate)):
            if value is None:
                raise ArgumentError(
                    name,
                    f"a value for variant={variant!r} (β_t needs the step t and the decay rate c)",
                    "None",
                )
    else:
        for name, value in (("step", step), ("decay_rate", rate)):
            if value is not None:
                raise ArgumentError(
                    name, f"None for variant={variant!r} (only the mdgf variants decay)", repr(value)
                )
    if variant == "sr_ste" and arguments["exact_grad"]:
        raise ArgumentError(
            "exact_grad",
            "False for variant='sr_ste' (its backward is the SR-STE surrogate by definition)",
            "True",
        )


def decay_factor(variant: str, step, decay_rate) -> float:
    """β_t: the multiplier of the pruned weights (0 for sr_ste and step)."""
    if variant == "mdgf_linear":
        return max(1.0 - decay_rate * step, 0.0)
    if variant == "mdgf_exp":
        return math.exp(-decay_rate * step)
    return 0.0


@op(
    inputs={
        "W": FloatArray("...", "K"),
        "N": IntScalar(1),
        "M": IntScalar(1),
        "variant": OneOf(*VARIANTS),
        "step": IntScalar(0, optional=True),
        "decay_rate": RealScalar(0, optional=True),
        "lambda_w": RealScalar(0),
        "exact_grad": Flag(),
        "conv": Flag(),
    },
    outputs=("w_sparse",),
    differentiable=("W",),
    check=_check_sparse_weight,
    custom_vjp="straight-through estimators: the dense weights receive the gradient of the "
    "sparse ones (SR-STE adds λ_W(1 − m)⊙W), not the derivative G⊙m(+β) of the masked forward",
)
def nm_sparse_weight(
    W,  # noqa: N803 - the paper's W
    *,
    N,  # noqa: N803
    M,  # noqa: N803
    variant,
    step=None,
    decay_rate=None,
    lambda_w=2e-4,
    exact_grad=False,
    conv=False,
):
    r"""N:M-sparse weights for training, with the straight-through backward of each recipe.

    Sparse training keeps dense weights ``W`` and uses ``W ⊙ m`` in the forward, with the
    N:M mask ``m`` (:func:`nm_mask`) recomputed every step. The gradient of the sparse
    weights is passed to the dense ones as if the mask were not there (a straight-through
    estimator), so pruned weights keep learning and can come back. At high sparsity the
    pruned weights' gradients are noise; the paper's decaying recipes let the pruned weights
    fade out of the forward gradually instead (MDGF), or sparsify in stages (SDGF,
    :func:`sdgf_schedule`).

    Forward (``m`` the N:M mask of W, ``β_t`` the pruned weights' multiplier)::

        sr_ste, step:   W̃ = W ⊙ m
        mdgf_linear:    W̃ = W ⊙ (m + (1 − m) β_t),   β_t = max(1 − c·t, 0)
        mdgf_exp:       W̃ = W ⊙ (m + (1 − m) β_t),   β_t = exp(−c·t)

    with t the step counted from the start of sparse training and c the decay rate. The
    product is a selection, computed as ``where(m, W, β_t·W)`` (exact for the kept weights).

    Backward (custom; ``G = ∂L/∂W̃``)::

        sr_ste:                 Ḡ_W = G + λ_W (1 − m) ⊙ W      (sparse-refined STE)
        step, mdgf_*:           Ḡ_W = G                         (dense STE)
        step, mdgf_*, exact:    Ḡ_W = G ⊙ (m + (1 − m) β_t)     (exact_grad=True)

    Derivation of the exact form: the mask is piecewise constant in W (it changes only
    where two magnitudes in a group cross), so almost everywhere ``∂W̃_i/∂W_j =
    δ_ij (m_i + (1 − m_i) β_t)`` and the VJP is the elementwise product. The straight-through
    forms replace that Jacobian by the identity; SR-STE adds the decay λ_W(1 − m) ⊙ W, the
    gradient of ``(λ_W/2)‖(1 − m) ⊙ W‖²``, which pulls the pruned weights to zero and
    keeps the mask from flipping back and forth. The official MDGF code returns the dense
    STE ``G`` (its ``LinearDecay``/``ExponentialDecay.backward``), which is the default
    here; ``exact_grad=True`` gives the derivative instead.

    Args:
        W: dense weights (..., K) (or (out, in, kh, kw) with ``conv=True``), float32/float64.
        N: weights kept per group of M (1 ≤ N ≤ M).
        M: group size; the grouped axis must be a multiple of M.
        variant: "sr_ste", "step", "mdgf_linear" or "mdgf_exp" (required: the recipe).
        step: t ≥ 0, steps since sparse training started (mdgf only; required there).
        decay_rate: c ≥ 0 (mdgf only; required there: the paper tunes it per model, the
            official configuration's 2e−4 is one setting, not a rule).
        lambda_w: SR-STE's decay λ_W (default 2e−4, Zhou et al. 2021 and the official
            ``SparseSRSTE``); used by sr_ste only.
        exact_grad: the exact almost-everywhere derivative instead of the dense STE
            (step and mdgf; default False, the official backward).
        conv: group a conv weight along its input channels (default False).

    Returns:
        w_sparse: the weights used in the forward, shaped like ``W``, in its dtype.

    Reference: Bambhaniya et al., *Progressive Gradient Flow for Robust N:M Sparsity
    Training in Transformers*, arXiv:2402.04744; official code
    abhibambhaniya/progressive_gradient_flow_nm_sparsity
    (``timm/sparse_pruning/sparse_functions.py``: ``SparseSRSTE``, ``StepDecay``,
    ``LinearDecay``, ``ExponentialDecay``); Zhou et al., *Learning N:M Fine-grained
    Structured Sparse Neural Networks From Scratch*, ICLR 2021 (SR-STE, λ_W = 2e−4).

    >>> import numpy as np, refimpl
    >>> W = np.array([[4.0, -1.0, 2.0, 3.0]])
    >>> refimpl.quantization_sparsity.nm_sparse_weight(W, N=2, M=4, variant="mdgf_linear",
    ...                                                step=3, decay_rate=0.25)  # β = 1/4
    array([[ 4.  , -0.25,  0.5 ,  3.  ]])
    >>> _, pullback = refimpl.vjp(refimpl.quantization_sparsity.nm_sparse_weight, W, N=2, M=4,
    ...                           variant="sr_ste", lambda_w=0.5)
    >>> pullback(np.ones((1, 4)))[0]  # G + λ(1 − m)W: 1 − 0.5, 1 + 1 on the pruned
    array([[1. , 0.5, 2. , 1. ]])
    """
    dtype = W.dtype.type
    mask = keep_mask(W, N, M, conv)
    beta = decay_factor(variant, step, decay_rate)
    # a selection: the kept weights are copied exactly, the pruned ones scaled by β_t
    w_sparse = np.where(mask, W, W * dtype(beta)) if beta else np.where(mask, W, dtype(0))
    return w_sparse, (W, mask, variant, dtype(beta), lambda_w, exact_grad)


@nm_sparse_weight.defvjp
def nm_sparse_weight_backward(residuals, g_w_sparse):
    W, mask, variant, beta, lambda_w, exact_grad = residuals
    dtype = W.dtype
    g = np.asarray(g_w_sparse, dtype=dtype)
    if variant == "sr_ste":
        # Ḡ = G + λ_W (1 − m) ⊙ W: the decay acts on the pruned weights only
        g_W = np.where(mask, g, g + dtype.type(lambda_w) * W)
    elif exact_grad:
        g_W = np.where(mask, g, g * beta)
    else:
        g_W = g.copy()
    return (g_W.astype(dtype, copy=False),)


def _check_schedule(arguments) -> None:
    N, M = arguments["N"], arguments["M"]
    total, dense, fine = arguments["total_epochs"], arguments["dense_epochs"], arguments["fine_tune_epochs"]
    epochs = arguments["epochs"]
    ratio = M // N if N and M % N == 0 else 0
    if N >= M or ratio < 2 or ratio & (ratio - 1):
        raise ArgumentError(
            "N",
            f"a target N:M with M/N a power of two >= 2 (the frames halve the kept count: "
            f"(M−1):M, M/2:M, ..., N:M; M = {M})",
            f"N = {N}",
        )
    if dense + fine > total:
        raise ArgumentError(
            "total_epochs",
            f"at least dense_epochs + fine_tune_epochs = {dense + fine}",
            f"total_epochs = {total}",
        )
    if epochs.size and int(epochs.max()) >= total:
        raise ArgumentError("epochs", f"epoch indices below total_epochs = {total}", f"{int(epochs.max())}")


@op(
    inputs={
        "epochs": IntArray("T", low=0),
        "N": IntScalar(1),
        "M": IntScalar(2),
        "total_epochs": IntScalar(1),
        "dense_epochs": IntScalar(0),
        "fine_tune_epochs": IntScalar(0),
        "official_boundary": Flag(),
    },
    outputs=("kept", "binary"),
    check=_check_schedule,
)
def sdgf_schedule(epochs, *, N, M, total_epochs, dense_epochs, fine_tune_epochs, official_boundary=False):  # noqa: N803
    r"""SDGF-Stepwise: the N:M pattern of each epoch when the structure decays to the target.

    Structure decay gradient flow sparsifies in stages: after the dense epochs the kept
    count per group of M steps down ``(M−1):M, M/2:M, M/4:M, ..., N:M`` in equal frames,
    so the gradient flow to pruned weights shrinks gradually; the last epochs fine-tune
    with the binary target mask (any MDGF decay switched off).

    Forward, with ``S = total − dense − fine_tune`` sparse epochs and
    ``F = log₂(M/N) + 1`` frames (frame i keeps ``M − 1`` for i = 0, ``M/2^i`` after)::

        start_i  = dense + ⌊i·S/F⌋                    (i = 0, ..., F − 1)
        kept(e)  = M                                  e < dense           (dense training)
                 = kept of the last frame i with start_i ≤ e              (otherwise)
        binary(e) = e ≥ total − fine_tune             (fine-tuning: binary mask)

    The floor is taken exactly in integers (the official code truncates ``i·(S/F)`` in
    floating point). Frames shorter than one epoch collapse: the later frame wins, as in the
    official dictionary of frame starts. For 1:16 the frames are 15:16, 8:16, 4:16, 2:16,
    1:16 (five frames, as the official code's comment says; its README: Dense → 7:8 → 4:8 →
    2:8 → 1:8 for 1:8). An earlier revision of the official code used log₂(M/N) frames, the
    last N:M frame starting with the fine-tune epochs; the current one is followed here.

    ``official_boundary=True`` starts the binary phase one epoch later, at
    ``e > total − fine_tune`` (the official ``get_sparse_weights`` test; see the recorded
    deviation).

    Not differentiable (integer schedule; no backward).

    Args:
        epochs: epoch indices (T,), integers in [0, total_epochs).
        N: target kept count; M/N must be a power of two ≥ 2.
        M: group size.
        total_epochs: all epochs (dense + sparse + fine-tune).
        dense_epochs: dense epochs at the start.
        fine_tune_epochs: fine-tune epochs at the end (binary target mask).
        official_boundary: the official code's fine-tune test ``e > total − fine_tune``
            (default False: the last ``fine_tune_epochs`` epochs).

    Returns:
        kept: (T,) int64, weights kept per group of M at each epoch (M: dense).
        binary: (T,) bool, True where the mask is forced binary (fine-tuning).

    Reference: Bambhaniya et al., *Progressive Gradient Flow for Robust N:M Sparsity
    Training in Transformers*, arXiv:2402.04744 (SDGF-Stepwise); official code
    abhibambhaniya/progressive_gradient_flow_nm_sparsity
    (``timm/sparse_pruning/sparse_functions.py``: ``get_decay_config`` type "sparsify",
    ``SparseLinear.get_sparse_weights``).

    >>> import numpy as np, refimpl
    >>> kept, binary = refimpl.quantization_sparsity.sdgf_schedule(
    ...     np.arange(10), N=1, M=4, total_epochs=10, dense_epochs=1, fine_tune_epochs=3)
    >>> kept  # dense, then 3:4, 2:4, 1:4 in frames of ⌊6/3⌋ = 2 epochs
    array([4, 3, 3, 2, 2, 1, 1, 1, 1, 1])
    >>> binary.astype(int)
    array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    """
    frames = int(round(math.log2(M // N))) + 1
    sparse_epochs = total_epochs - dense_epochs - fine_tune_epochs
    starts = np.array([dense_epochs + (i * sparse_epochs) // frames for i in range(frames)], dtype=np.int64)
    frame_kept = np.array([M - 1 if i == 0 else M >> i for i in range(frames)], dtype=np.int64)
    e = epochs.astype(np.int64)
    # the last frame whose start is at or before e (starts are non-decreasing)
    frame = np.searchsorted(starts, e, side="right") - 1
    kept = np.where(e < dense_epochs, np.int64(M), frame_kept[np.maximum(frame, 0)])
    boundary = total_epochs - fine_tune_epochs
    binary = e > boundary if official_boundary else e >= boundary
    return (kept.astype(np.int64), np.asarray(binary, dtype=bool)), None


known_deviation(
    sdgf_schedule,
    name="sdgf-fine-tune-starts-one-epoch-late",
    source="abhibambhaniya/progressive_gradient_flow_nm_sparsity, timm/sparse_pruning/sparse_functions.py "
    "(SparseLinear.get_sparse_weights)",
    official="forces the binary mask when current_epoch > total_epochs − fine_tune_epochs, so the "
    "first of the fine-tune epochs still runs the MDGF decay",
    paper="the last fine_tune_epochs epochs fine-tune with the binary mask",
    example=Example(
        args=(np.array([7]),),
        kwargs={"N": 1, "M": 4, "total_epochs": 10, "dense_epochs": 1, "fine_tune_epochs": 3},
        official={"binary": [False]},
        reference={"binary": [True]},
    ),
    flag={"official_boundary": True},
)
