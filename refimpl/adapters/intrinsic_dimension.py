"""Intrinsic-dimension reparameterizations: the Walsh–Hadamard transform, the Fastfood projection,
dense random subspaces and SAID (Intrinsic Dimensionality Explains the Effectiveness of Language
Model Fine-Tuning)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    Paper,
    array_namespace,
    known_deviation,
    op,
)

__all__ = [
    "fastfood_projection",
    "fwht",
    "random_subspace_reparam",
    "said_intrinsic_size",
    "said_reparam",
]
EXPORTS = ("said_intrinsic_size",)  # a helper exported by refimpl.adapters beside the ops

PAPER = Paper(
    "Intrinsic Dimensionality Explains the Effectiveness of Language Model Fine-Tuning",
    arxiv="2012.13255",
    year=2020,
)


# -- shared pieces --------------------------------------------------------------------------------
def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def fastfood_length(D: int) -> int:  # noqa: N803 - the paper's name
    """``L = 2^⌈log₂ D⌉``, the Hadamard length of a Fastfood projection onto D entries (exact
    integer arithmetic: ``(D − 1).bit_length()``)."""
    return 1 << (int(D) - 1).bit_length()


def _hadamard(values: np.ndarray) -> np.ndarray:
    """``H_L v`` along the last axis (L = 2^m), in float64, as a new float64 array.

    m butterfly stages; the stage of half-width h maps each pair ``(a, b) = (v_i, v_{i+h})``
    (bit h of i clear) to ``(a + b, a − b)``. Each output is a balanced tree of ±sums: pairwise
    summation by construction, and float64 keeps its error below ``m·2⁻⁵³·Σ_j |v_j|``.
    """
    length = values.shape[-1]
    work = np.asarray(values, dtype=np.float64).reshape(-1, length)
    half = 1
    while half < length:
        pairs = work.reshape(work.shape[0], length // (2 * half), 2, half)
        a, b = pairs[:, :, 0, :], pairs[:, :, 1, :]
        work = np.stack((a + b, a - b), axis=2).reshape(-1, length)
        half *= 2
    return work.reshape(values.shape)


def _fastfood_scale(G: np.ndarray, D: int) -> float:  # noqa: N803
    """``c = sqrt(L·Σ_i G_i²)·sqrt(D/L)`` (equal to ``sqrt(D·Σ_i G_i²)``), in float64."""
    length = G.shape[0]
    return math.sqrt(length * float(np.sum(np.square(G, dtype=np.float64)))) * math.sqrt(D / length)


def _fastfood_apply(x, B, Pi, G, D):  # noqa: N803
    """``[H G Π H B pad_L(x)]_{1:D} / c`` in float64 (the forward of :func:`fastfood_projection`)."""
    length = B.shape[0]
    padded = np.zeros(length)
    padded[: x.shape[0]] = x
    mixed = _hadamard(B * padded)  # H B pad_L(x)
    gathered = mixed[Pi]  # Π: z_i = v_{Π_i}
    return _hadamard(G * gathered)[:D] / _fastfood_scale(G, D)


def _fastfood_adjoint(g, B, Pi, G, d):  # noqa: N803
    """``[B H Πᵀ (G H pad_L(g/c))]_{1:d}`` in float64: the transpose of :func:`_fastfood_apply`."""
    length, D = B.shape[0], g.shape[0]  # noqa: N806
    padded = np.zeros(length)
    padded[:D] = g / _fastfood_scale(G, D)  # Sᵀ: pad the cotangent with zeros
    scaled = G * _hadamard(padded)  # G H
    scattered = np.empty(length)
    scattered[Pi] = scaled  # Πᵀ: the scatter u[Π_i] = w_i undoes the gather
    return (B * _hadamard(scattered))[:d]  # B H, then Eᵀ keeps the first d entries


def _check_fastfood(arguments: Mapping[str, Any], x_name: str, D: int) -> None:  # noqa: N803
    """The rules of a Fastfood projection of ``arguments[x_name]`` onto D entries."""
    B, Pi, G = arguments["B"], arguments["Pi"], arguments["G"]  # noqa: N806
    length, d = B.shape[0], arguments[x_name].shape[0]
    if length != fastfood_length(D):
        raise ArgumentError(
            "B",
            f"length L = 2^⌈log₂ D⌉ = {fastfood_length(D)} for D = {D} (B, Pi and G share it)",
            f"length {length}",
        )
    if d > length:
        raise ArgumentError(
            x_name, f"at most L = {length} entries (it is zero-padded to L = 2^⌈log₂ D⌉)", f"{d} entries"
        )
    xp = array_namespace(B)
    if bool(xp.any(B == 0)):
        raise ArgumentError("B", "random signs in {−1, +1}", f"a 0 at index {int(xp.argmax(B == 0))}")
    seen = xp.zeros(length, dtype=bool)
    seen[Pi] = True  # L values in [0, L) (the spec checked the range) reach every index iff distinct
    if not bool(seen.all()):
        missing = int(xp.argmin(seen))
        raise ArgumentError(
            "Pi", f"a permutation of 0, …, {length - 1}", f"a repeated index ({missing} never occurs)"
        )
    if not float(xp.sum(G.astype(xp.float64) ** 2)) > 0:
        raise ArgumentError("G", "a Gaussian diagonal with Σ G_i² > 0 (c divides by it)", "all zeros")


# -- fwht -----------------------------------------------------------------------------------------
def _check_fwht(arguments: Mapping[str, Any]) -> None:
    length = arguments["x"].shape[-1]
    if not _is_power_of_two(length):
        raise ArgumentError("x", "a last axis of length L = 2^m (1, 2, 4, 8, …)", f"length {length}")


@op(inputs={"x": FloatArray("...", "L")}, outputs=("y",), differentiable=("x",), check=_check_fwht)
def fwht(x):
    r"""The unnormalized fast Walsh–Hadamard transform ``y = H_L x`` along the last axis.

    The Walsh–Hadamard matrix ``H_L`` (L = 2^m) is the m-fold Kronecker power of
    ``H_2 = [[1, 1], [1, −1]]``: ``H_ij = (−1)^{popcount(i AND j)}`` (Sylvester's natural
    order). It mixes every input into every output with signs ±1, costs ``L log₂ L`` additions
    instead of ``L²`` multiplications, and is its own inverse up to a factor: ``H² = L·I``
    (the normalized ``H/√L`` is orthogonal). It is the fast mixing step of the Fastfood
    projection (:func:`fastfood_projection`). No normalization is applied here.

    Forward (the code): m butterfly stages over the last axis; the stage of half-width
    h = 1, 2, 4, …, L/2 maps each pair ``(a, b) = (v_i, v_{i+h})`` whose index i has bit h
    clear to ``(a + b, a − b)``. Every leading axis is a separate vector.

    Accuracy: the butterflies run in float64 whatever the input dtype, and the result is rounded
    once to the input dtype. Each output is a balanced binary tree of ±sums (pairwise summation
    by construction), so its error is at most ``m·2⁻⁵³·Σ_j |x_j|``; for float32 inputs and
    L up to 2²⁷ that is below 3e-15·Σ|x|, far below float32's own rounding of the output.

    Backward: ``y = H x`` is linear, ``∂y_i/∂x_j = H_ij``, so
    ``x̄_j = Σ_i ȳ_i H_ij = (Hᵀ ȳ)_j``. H is symmetric (``H_ij`` depends on ``i AND j`` only):
    ``x̄ = H ȳ``, the same transform of the cotangent, also unnormalized.

    Args:
        x: (..., L) float32 or float64, L a power of two (L = 1 is the identity).

    Returns:
        y: (..., L), the dtype of x.

    Reference: the transform of Fastfood (Le, Sarlós and Smola, ICML 2013) as used for
    intrinsic-dimension fine-tuning, Aghajanyan, Zettlemoyer and Gupta, *Intrinsic Dimensionality
    Explains the Effectiveness of Language Model Fine-Tuning*, arXiv:2012.13255 (official copies:
    r-three/t-few src/models/intrinsic.py, ``fast_walsh_hadamard_torched(normalize=False)``).

    >>> import numpy as np, refimpl
    >>> refimpl.adapters.fwht(np.array([1.0, 2.0, 3.0, 4.0]))
    array([10., -2., -4.,  0.])
    """
    return _hadamard(x).astype(x.dtype, copy=False), x.dtype


@fwht.defvjp
def fwht_backward(residuals, g_y):
    dtype = residuals
    return (_hadamard(g_y).astype(dtype, copy=False),)  # x̄ = H ȳ (H symmetric)


# -- fastfood_projection -------------------------------------------------------------------------
def _check_fastfood_projection(arguments: Mapping[str, Any]) -> None:
    _check_fastfood(arguments, "x", arguments["D"])


@op(
    inputs={
        "x": FloatArray("d"),
        "B": IntArray("L", low=-1, high=2),
        "Pi": IntArray("L", low=0, high="L"),
        "G": FloatArray("L"),
        "D": IntScalar(1),
    },
    outputs=("y",),
    differentiable=("x",),
    check=_check_fastfood_projection,
)
def fastfood_projection(x, B, Pi, G, *, D):  # noqa: N803
    r"""The Fastfood random projection ``y = P x`` from d to D dimensions, in O(L log L).

    A dense Gaussian D × d projection costs D·d memory and time, impossible for D ~ 10⁸
    parameters. Fastfood replaces it by a product of diagonal, permutation and Walsh–Hadamard
    matrices that behaves like a Gaussian matrix (its rows are nearly independent Gaussian
    directions) yet stores only 3L numbers and applies in ``O(L log L)``. The intrinsic-dimension
    method trains ``θ = θ_0 + P θ_d`` through it (Li et al.; Aghajanyan et al.).

    Forward, with ``L = 2^⌈log₂ D⌉`` and the explicit random inputs B (signs ±1), Π (a
    permutation, applied as the gather ``z_i = v_{Π_i}``) and G (Gaussian diagonal)::

        v = H B pad_L(x)             pad x with L − d zeros, flip signs, mix
        w = H G Π v                  permute, scale, mix again
        y = w[:D] / c,   c = sqrt(L·Σ_i G_i²)·sqrt(D/L)   (= sqrt(D·Σ_i G_i²))

    the normalization of the official code (``fastfood_vars``' divisor times ``sqrt(DD/LL)``).
    The two transforms run in float64 (see :func:`fwht`), c is a float64 scalar, and y is
    rounded once to the dtype of x.

    Backward (the true adjoint). Write the forward as a product of linear maps,
    ``P = (1/c)·S H G Π H B E`` with ``E = [I_d; 0]`` (L × d, the zero padding) and
    ``S = [I_D 0]`` (D × L, the truncation). Then ``x̄ = Pᵀ ȳ`` with
    ``Pᵀ = (1/c)·Eᵀ Bᵀ Hᵀ Πᵀ Gᵀ Hᵀ Sᵀ``, and step by step:

    1. ``Sᵀ``: pad the cotangent with zeros to length L, dividing by c: ``p = pad_L(ȳ/c)``;
    2. ``Hᵀ = H`` (symmetric) and ``Gᵀ = G`` (diagonal): ``a = G ⊙ H p``;
    3. ``Πᵀ``: the gather ``(Π v)_i = v_{Π_i}`` has as transpose the scatter
       ``u[Π_i] = a_i`` (a permutation's transpose is its inverse);
    4. ``Hᵀ = H``, ``Bᵀ = B``, ``Eᵀ`` keeps the first d entries: ``x̄ = (B ⊙ H u)[:d]``.

    So ``x̄ = [B·H·Πᵀ(G·H(pad_L(ȳ/c)))]_{1:d}``, which satisfies ``⟨P x, y⟩ = ⟨x, Pᵀ y⟩``.

    Known deviation of the official code: its ``FastWalshHadamard.backward`` multiplies
    ``H ȳ`` by ``1/√L`` while its forward is unnormalized, so its gradient is this adjoint
    divided by L (``refimpl deviations --op fastfood_projection``); it also casts to float32.
    The reference keeps the true adjoint. The official ``⌈log₂ D⌉`` is computed as
    ``ceil(log(D)/log(2))`` in floating point, which gives L = 2D for a few exact powers of two
    (D = 2²⁹, 2³¹, …); here L is exact.

    Args:
        x: (d,) the low-dimensional vector (θ_d), d ≤ L.
        B: (L,) integer random signs in {−1, +1}.
        Pi: (L,) a permutation of 0, …, L − 1 (integers).
        G: (L,) the Gaussian diagonal, the dtype of x; ``Σ G_i² > 0``.
        D: the output size; the length of B, Pi and G must be ``2^⌈log₂ D⌉``.

    Returns:
        y: (D,), the dtype of x.

    Reference: Aghajanyan, Zettlemoyer and Gupta, arXiv:2012.13255 (the Fastfood projection
    after Li et al., arXiv:1804.08838, and Le et al., ICML 2013); normalization from the official
    code as copied in r-three/t-few, src/models/intrinsic.py (``fastfood_vars``,
    ``fastfood_torched``).

    With x = [1, 2], B = [1, −1], Π = [1, 0], G = [1, 2], D = 2 (L = 2):
    H B x = H[1, −2] = [−1, 3]; gathered [3, −1]; ⊙G [3, −2]; H gives [1, 5]; c = √(2·5)·1:

    >>> import numpy as np, refimpl
    >>> refimpl.adapters.fastfood_projection(
    ...     np.array([1.0, 2.0]), np.array([1, -1]), np.array([1, 0]), np.array([1.0, 2.0]), D=2)
    array([0.31622777, 1.58113883])
    """
    y = _fastfood_apply(x, B, Pi, G, D).astype(x.dtype, copy=False)
    return y, (B, Pi, G, x.shape[0], x.dtype)


@fastfood_projection.defvjp
def fastfood_projection_backward(residuals, g_y):
    B, Pi, G, d, dtype = residuals  # noqa: N806
    return (_fastfood_adjoint(g_y, B, Pi, G, d).astype(dtype, copy=False),)


# -- random_subspace_reparam ---------------------------------------------------------------------
@op(
    inputs={"theta0": FloatArray("D"), "P": FloatArray("D", "d"), "theta_d": FloatArray("d")},
    outputs=("theta",),
    differentiable=("theta_d",),
)
def random_subspace_reparam(theta0, P, theta_d):  # noqa: N803
    r"""Train in a random d-dimensional subspace: ``θ = θ_0 + P θ_d`` with a dense projection P.

    The intrinsic dimension of a task is the smallest d for which optimizing only
    ``θ_d ∈ R^d`` (initialized to 0, so training starts at the pretrained ``θ_0``) through a
    fixed random projection ``P ∈ R^{D×d}`` reaches (90% of) the full fine-tuning result. Only
    θ_d is trained; θ_0 and P are frozen. This is the dense form (Li et al.); the Fastfood form
    is ``θ_0 + fastfood_projection(θ_d, B, Pi, G, D=D)``, and SAID adds per-tensor scales
    (:func:`said_reparam`).

    P is an explicit input: Li et al. draw it Gaussian and normalize its columns to unit length;
    that construction (and any other) is the caller's.

    Forward: ``θ = θ_0 + P θ_d``, one matrix–vector product.

    Backward: ``θ_i = θ_{0,i} + Σ_j P_ij θ_{d,j}`` gives ``∂θ_i/∂θ_{d,j} = P_ij``, so
    ``θ̄_{d,j} = Σ_i ḡ_i P_ij``: ``θ̄_d = Pᵀ ḡ`` with ``ḡ = ∂L/∂θ``. θ_0 and P get no cotangent.

    Args:
        theta0: (D,) the frozen initial parameters (all tensors flattened into one vector).
        P: (D, d) the frozen random projection.
        theta_d: (d,) the trainable intrinsic parameters.

    Returns:
        theta: (D,), the dtype of the inputs.

    Reference: Li et al., arXiv:1804.08838 (the dense random subspace); Aghajanyan,
    Zettlemoyer and Gupta, arXiv:2012.13255 (its use for language-model fine-tuning).

    >>> import numpy as np, refimpl
    >>> P = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> refimpl.adapters.random_subspace_reparam(np.array([1.0, 1.0, 1.0]), P, np.array([0.5, -1.0]))
    array([ 1.5, -1. ,  0.5])
    """
    return theta0 + P @ theta_d, P


@random_subspace_reparam.defvjp
def random_subspace_reparam_backward(residuals, g_theta):
    P = residuals  # noqa: N806
    return (P.T @ g_theta,)  # θ̄_d = Pᵀ ḡ


# -- said_reparam --------------------------------------------------------------------------------
def said_intrinsic_size(
    budget: int,
    num_tensors: int,
    *,
    official_said_size: bool = False,
    num_named_parameters: int | None = None,
) -> int:
    """The length of θ_d that :func:`said_reparam` takes for a budget d and m scaled tensors.

    The paper trades m of the d trainable parameters for the scales λ: ``d − m``. The official
    code (``official_said_size=True``) subtracts ``m_all + 1``, with ``m_all`` the number of all
    named parameter tensors of the model (``num_named_parameters``; m when None).

    >>> said_intrinsic_size(10, 3), said_intrinsic_size(10, 3, official_said_size=True)
    (7, 6)
    """
    if not official_said_size:
        return int(budget) - int(num_tensors)
    all_tensors = int(num_tensors if num_named_parameters is None else num_named_parameters)
    return int(budget) - all_tensors - 1


def _check_said(arguments: Mapping[str, Any]) -> None:
    theta0, theta_d, lam, ids = (arguments[k] for k in ("theta0", "theta_d", "lam", "tensor_ids"))
    fastfood = [arguments[k] is not None for k in ("B", "Pi", "G")]
    if arguments["P"] is not None and any(fastfood):
        raise ArgumentError(
            "P",
            "one projection: a dense P (D, d − m), or the Fastfood inputs B, Pi, G",
            "both P and Fastfood inputs",
        )
    if arguments["P"] is None and not all(fastfood):
        missing = ", ".join(k for k, given in zip(("B", "Pi", "G"), fastfood, strict=True) if not given)
        raise ArgumentError(
            "P",
            "a dense projection P (D, d − m), or all three Fastfood inputs B, Pi, G",
            f"neither ({missing} None)",
        )
    if arguments["P"] is None:
        _check_fastfood(arguments, "theta_d", theta0.shape[0])
    m = lam.shape[0]
    xp = array_namespace(ids)
    counts = xp.bincount(ids, minlength=m)
    if not bool(counts.all()):
        raise ArgumentError(
            "tensor_ids",
            f"every tensor 0, …, {m - 1} (one per scale λ_i) owning at least one entry",
            f"no entry of tensor {int(xp.argmin(counts))}",
        )
    official, all_tensors = arguments["official_said_size"], arguments["num_named_parameters"]
    if all_tensors is not None and not official:
        raise ArgumentError(
            "num_named_parameters",
            "None unless official_said_size=True (only the official accounting counts all tensors)",
            repr(all_tensors),
        )
    budget, k = arguments["budget"], theta_d.shape[0]
    if not official:
        if k != budget - m:
            raise ArgumentError(
                "theta_d",
                f"d − m = {budget} − {m} = {budget - m} entries (the budget d = {budget} pays for "
                f"m = {m} scales λ and d − m intrinsic coordinates)",
                f"{k} entries",
            )
        return
    all_tensors = m if all_tensors is None else all_tensors
    if all_tensors < m:
        raise ArgumentError(
            "num_named_parameters",
            f"at least the m = {m} scaled tensors (it counts all named parameter tensors)",
            repr(all_tensors),
        )
    if k != budget - all_tensors - 1:
        raise ArgumentError(
            "theta_d",
            f"d − (m_all + 1) = {budget} − ({all_tensors} + 1) = {budget - all_tensors - 1} entries "
            "(the official accounting, official_said_size=True)",
            f"{k} entries",
        )


@op(
    inputs={
        "theta0": FloatArray("D"),
        "theta_d": FloatArray("k"),
        "lam": FloatArray("m"),
        "tensor_ids": IntArray("D", low=0, high="m"),
        "P": FloatArray("D", "k", optional=True),
        "B": IntArray("L", low=-1, high=2, optional=True),
        "Pi": IntArray("L", low=0, high="L", optional=True),
        "G": FloatArray("L", optional=True),
        "budget": IntScalar(2),
        "official_said_size": Flag(),
        "num_named_parameters": IntScalar(1, optional=True),
    },
    outputs=("theta",),
    differentiable=("theta_d", "lam"),
    check=_check_said,
)
def said_reparam(
    theta0,
    theta_d,
    lam,
    tensor_ids,
    P=None,  # noqa: N803
    B=None,  # noqa: N803
    Pi=None,  # noqa: N803
    G=None,  # noqa: N803
    *,
    budget,
    official_said_size=False,
    num_named_parameters=None,
):
    r"""SAID: a random-subspace update with one trainable scale per tensor, ``θ_i = θ_{0,i} + λ_i (Pθ_d)_i``.

    Structure-Aware Intrinsic Dimension: the random subspace of
    :func:`random_subspace_reparam` moves every tensor of the model by the same random map; SAID
    lets each of the m tensors (weight matrices, biases, …) scale its share of the update by a
    trainable ``λ_i`` (initialized to 1). The λ's are paid for out of the budget: with d
    trainable parameters in all, θ_d has ``d − m`` entries.

    Forward, with ``u = P θ_d`` (D,) and ``t(j)`` the tensor of entry j (``tensor_ids``)::

        θ_j = θ_{0,j} + λ_{t(j)} · u_j

    The projection is either dense (``P`` (D, d − m), Li et al.) or Fastfood (``B``, ``Pi``,
    ``G``: the transform of :func:`fastfood_projection` onto D entries, the paper's choice), one
    projection of the whole flattened parameter vector as in the paper's
    ``θ^D_i = θ^D_{0,i} + λ_i P(θ^{d−m})_i``. Give exactly one of the two.

    Size accounting (explicit, checked): ``budget`` is d. The paper trades m of the d
    parameters for the λ's, so θ_d has ``d − m`` entries and the trainable count is exactly d.
    The official code (``IntrinsicDimensionLight(said=True)``) does
    ``d ← d − (m_all + 1)`` with m_all the number of ALL named parameter tensors of the model
    (not only the scaled ones, which size λ), asserting ``d > m_all``: one fewer than the paper,
    and fewer still when a name filter leaves tensors unscaled. ``official_said_size=True``
    reproduces that count (``num_named_parameters`` = m_all, m when None).
    :func:`said_intrinsic_size` gives the length to allocate.

    Not reproduced: the official code projects each tensor with its own Fastfood transform
    onto ``Σ shape`` entries (not ``∏ shape``) and updates a 2-D tensor by the rank-1 outer
    product of the two halves of that vector; this op follows the paper's single projection of
    the whole flattened parameter vector.

    Backward. Let ``ḡ = ∂L/∂θ`` (D,). θ_0 and the projection are frozen.

    1. ``∂θ_j/∂λ_i = u_j`` if ``t(j) = i`` (else 0): ``λ̄_i = Σ_{j: t(j) = i} ḡ_j u_j``, a
       per-tensor sum of ``ḡ ⊙ u`` (u is kept from the forward).
    2. ``∂θ_j/∂u_j = λ_{t(j)}``: the cotangent of u is ``ū = λ_{t} ⊙ ḡ``.
    3. ``u = P θ_d`` is linear: ``θ̄_d = Pᵀ ū`` — ``Pᵀ ū`` for a dense P, the Fastfood adjoint of
       :func:`fastfood_projection` otherwise (the true adjoint, not the official 1/L-scaled one).

    Args:
        theta0: (D,) the frozen initial parameters, all tensors flattened into one vector.
        theta_d: (k,) the intrinsic parameters, ``k = d − m`` (``d − m_all − 1`` officially).
        lam: (m,) the per-tensor scales λ (initialized to 1).
        tensor_ids: (D,) integers in [0, m): the tensor each entry of θ belongs to; every tensor
            owns at least one entry.
        P: (D, k) a dense projection, or None for Fastfood.
        B, Pi, G: the Fastfood inputs of :func:`fastfood_projection` (length ``2^⌈log₂ D⌉``,
            k ≤ L), or None for a dense P.
        budget: d, the total number of trainable parameters (θ_d and λ together).
        official_said_size: False (default) for the paper's ``d − m``; True for the official
            ``d − (m_all + 1)``.
        num_named_parameters: m_all for ``official_said_size=True`` (None: m, no name filter);
            must be None otherwise.

    Returns:
        theta: (D,), the dtype of the inputs.

    Reference: Aghajanyan, Zettlemoyer and Gupta, *Intrinsic Dimensionality Explains the
    Effectiveness of Language Model Fine-Tuning*, arXiv:2012.13255 (the SAID definition); official
    accounting from the code as copied in r-three/t-few, src/models/intrinsic.py
    (``IntrinsicDimensionLight.__init__``).

    Two tensors (entries 0–1 and 2), d = 3, so θ_d has one entry; u = P θ_d = [1, 2, 3]·2:

    >>> import numpy as np, refimpl
    >>> refimpl.adapters.said_reparam(
    ...     np.zeros(3), np.array([2.0]), np.array([1.0, -0.5]), np.array([0, 0, 1]),
    ...     np.array([[1.0], [2.0], [3.0]]), budget=3)
    array([ 2.,  4., -3.])
    """
    if P is not None:
        u = P @ theta_d
    else:
        u = _fastfood_apply(theta_d, B, Pi, G, theta0.shape[0]).astype(theta0.dtype, copy=False)
    scale = lam[tensor_ids]  # λ_{t(j)} for every entry j
    theta = theta0 + scale * u
    return theta, (u, scale, lam.shape[0], tensor_ids, P, B, Pi, G, theta_d.shape[0])


@said_reparam.defvjp
def said_reparam_backward(residuals, g_theta):
    u, scale, m, tensor_ids, P, B, Pi, G, k = residuals  # noqa: N806
    g_lam = np.zeros(m, dtype=g_theta.dtype)
    np.add.at(g_lam, tensor_ids, g_theta * u)  # λ̄_i = Σ_{t(j) = i} ḡ_j u_j
    g_u = scale * g_theta  # ū = λ_t ⊙ ḡ
    if P is not None:
        g_theta_d = P.T @ g_u
    else:
        g_theta_d = _fastfood_adjoint(g_u, B, Pi, G, k).astype(g_theta.dtype, copy=False)
    return g_theta_d, g_lam


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    fastfood_projection,
    name="fastfood-hadamard-backward-over-sqrt-l",
    source="Aghajanyan's Fastfood code as copied in r-three/t-few, src/models/intrinsic.py, "
    "FastWalshHadamard.backward (used twice by fastfood_torched)",
    official="returns H·ḡ/√L for an unnormalized forward H·x (the 1/√L of a normalized transform), "
    "applied at both Hadamard steps: the gradient of θ_d is the true adjoint Pᵀḡ divided by L "
    "(it also casts to float32)",
    paper="θ̄_d = Pᵀḡ, the adjoint of the forward P = S H G Π H B E / c",
    example=Example(
        args=(np.array([1.0, 2.0]), np.array([1, -1]), np.array([1, 0]), np.array([1.0, 2.0])),
        kwargs={"D": 2},
        official={"cotangent of 'x'": [0.31623, 0.31623]},
        reference={"cotangent of 'x'": [0.63246, 0.63246]},
        note="L = 2: Pᵀ[1, 1] = [2, 2]/√10; the official code returns half of it",
    ),
)
known_deviation(
    said_reparam,
    name="said-size-all-named-parameters-plus-one",
    source="Aghajanyan's code as copied in r-three/t-few, src/models/intrinsic.py, "
    "IntrinsicDimensionLight.__init__ (said=True)",
    official="shrinks the budget to d − (m_all + 1), m_all = len(module.named_parameters()) (all "
    "tensors, not only the scaled ones): one coordinate fewer than the paper, more with a filter",
    paper="θ_d has d − m entries, m = the number of scaled tensors (the λ's); d trainable in all",
    flag={"official_said_size": True},
    example=Example(
        args=(
            np.zeros(3),
            np.array([2.0]),
            np.array([1.0, -0.5]),
            np.array([0, 0, 1]),
            np.array([[1.0], [2.0], [3.0]]),
        ),
        kwargs={"budget": 4},
        official={"theta": [2.0, 4.0, -3.0]},
        reference={"raises": "InputError"},
        note="budget d = 4 with m = 2 tensors: the paper's θ_d has 2 entries (this one-entry θ_d is "
        "refused); the official code allocates 4 − (2 + 1) = 1 and runs",
    ),
)
