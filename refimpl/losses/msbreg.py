"""MSBReg's multiview centroid and Brownian diffusive losses (An Embedding-Dynamic Approach to
Self-supervised Learning)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    FloatArray,
    OneOf,
    Paper,
    array_namespace,
    l2_normalize,
    l2_normalize_backward,
    op,
    reduce_rows,
    row_weights,
)

__all__ = ["PAPER", "brownian_diffusive_loss", "multiview_centroid_loss"]

PAPER = Paper(
    "An Embedding-Dynamic Approach to Self-supervised Learning",
    arxiv="2207.03552",
    year=2023,
)


def _refuse_zero_rows(name: str, array) -> None:
    """A zero vector has no direction: its normalization divides by 0 (nothing is guarded)."""
    xp = array_namespace(array)
    zero = xp.all(array == 0, axis=-1)
    if bool(xp.any(zero)):
        index = tuple(int(i) for i in np.unravel_index(int(xp.argmax(zero.ravel())), zero.shape))
        where = f"at index {index}" if index else "(the whole vector)"
        raise ArgumentError(
            name, "vectors of nonzero norm (a zero vector has no direction to normalize)", f"zero {where}"
        )


def _check_centroid(arguments) -> None:
    _refuse_zero_rows("z", arguments["z"])
    _refuse_zero_rows("c", arguments["c"])


def _check_brownian(arguments) -> None:
    _refuse_zero_rows("z", arguments["z"])
    _refuse_zero_rows("u", arguments["u"])


def _per_entry_weights(g_loss, reduction: str, shape: tuple[int, int], dtype) -> np.ndarray:
    """The cotangent of each (view, image) term, shape (V, B): ``L̄/(VB)``, ``L̄`` or ``L̄_vb``."""
    g = np.asarray(g_loss).astype(dtype, copy=False)
    return row_weights(g, reduction, shape[0] * shape[1]).reshape(shape)


@op(
    inputs={
        "z": FloatArray("V", "B", "D"),
        "c": FloatArray("B", "D"),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z",),
    check=_check_centroid,
)
def multiview_centroid_loss(z, c, *, reduction="mean"):
    r"""MSBReg's multiview centroid loss: pull every view's embedding toward its image's centroid.

    MSBReg reads the embeddings of images as particles on the unit sphere, moved by forces.
    The attractive force pulls the V augmented views of each image toward the centroid of
    that image's views, taken from the delayed-parameter (EMA, à la BYOL) target branch and
    held constant. On the sphere ``2 − 2⟨ẑ, ĉ⟩ = ‖ẑ − ĉ‖²``: the squared chord between a view
    and the centroid direction.

    Forward, for view v of image b (``z`` raw online projections, normalized here)::

        ẑ_vb = z_vb/‖z_vb‖,   ĉ_b = c_b/‖c_b‖
        ℓ_vb = 2 − 2⟨ẑ_vb, ĉ_b⟩                 evaluated as ‖ẑ_vb − ĉ_b‖²
        L    = mean_{v,b} ℓ_vb                   (reduction="mean"; "sum"; "none": ℓ (V, B))

    The two forms are equal for unit vectors; the squared difference keeps its relative
    digits near convergence (ẑ ≈ ĉ), where ``2 − 2⟨ẑ, ĉ⟩`` cancels down to a few ulp of 2.
    Norms are taken by ``row_norm`` (scaled where ``‖z‖²`` would over- or underflow).

    Backward. ``c`` is the target branch's (a stop-gradient): only ``z`` gets a cotangent.
    With ``w_vb`` the cotangent of ℓ_vb (``L̄/(VB)`` for "mean")::

        ∂ℓ_vb/∂ẑ_vb = 2(ẑ_vb − ĉ_b)        (= −2ĉ_b + 2ẑ_vb: the gradient −2ĉ_b of
                                             2 − 2⟨ẑ, ĉ⟩, ×1/(VB) for the mean, plus a
                                             radial 2ẑ that the projection below removes)

    then through ``ẑ = z/‖z‖``, whose Jacobian is ``(I − ẑẑᵀ)/‖z‖``::

        z̄_vb = w_vb (I − ẑ_vbẑ_vbᵀ) 2(ẑ_vb − ĉ_b)/‖z_vb‖
             = −2 w_vb (ĉ_b − ẑ_vb⟨ẑ_vb, ĉ_b⟩)/‖z_vb‖

    (the shared ``l2_normalize_backward`` applied to ``2w(ẑ − ĉ)``). It is orthogonal to
    ``z_vb`` (the loss ignores the norm) and 0 where ẑ = ±ĉ.

    Not pinned by any source found (the paper's method section was not available; no
    official code): how the target centroid is formed (the mean of normalized or of
    raw target projections) — ``c`` is therefore an input, any vector along the centroid
    (``mean_v ẑ'_vb`` or its normalization; the op normalizes it). The weight of this term
    beside the Brownian loss (third-party code: ``L_MC + 0.1·L_B``) is the caller's sum.

    Args:
        z: online-branch projections (V, B, D) of V views of B images, float32 or float64,
            nonzero rows (normalized here; unit rows pass unchanged).
        c: target-branch centroids (B, D), one per image, the same dtype, nonzero rows
            (normalized here).
        reduction: "mean" over all V·B terms (default: ``mean_{v,b}``, as the third-party
            ``dij.mean()``), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (V, B) for reduction="none", in the dtype of ``z``.

    Reference: Moon, Buracas, Park, Kim, Canny, *An Embedding-Dynamic Approach to
    Self-supervised Learning*, arXiv:2207.03552 (WACV 2023). No official code found; checked
    against a third-party PyTorch implementation (``CentroidDiffusionEMALoss.get_centroid_loss``:
    ``2 − 2⟨normalize(z), normalize(mean of the target projections)⟩``, mean), which takes
    unit rows from ``F.normalize`` (a clamp of ‖z‖ at 1e-12, the same for every nonzero
    row that is not below 1e-12).

    >>> import numpy as np, refimpl
    >>> z = np.array([[[3.0, 0.0]], [[0.0, 2.0]]])  # two views of one image: e₁ and e₂
    >>> c = np.array([[1.0, 0.0]])                 # the centroid e₁
    >>> float(refimpl.losses.multiview_centroid_loss(z, c))  # (‖e₁ − e₁‖² + ‖e₂ − e₁‖²)/2
    1.0
    """
    dtype = z.dtype
    z_hat, norm = l2_normalize(z)
    c_hat, _ = l2_normalize(c)
    difference = z_hat - c_hat[None]  # ẑ − ĉ: no cancellation of 2 − 2⟨ẑ, ĉ⟩ near ẑ = ĉ
    per_entry = (difference * difference).sum(axis=-1)
    return reduce_rows(per_entry, reduction, dtype), (z_hat, norm, difference, reduction)


@multiview_centroid_loss.defvjp
def multiview_centroid_loss_backward(residuals, g_loss):
    z_hat, norm, difference, reduction = residuals
    dtype = z_hat.dtype
    w = _per_entry_weights(g_loss, reduction, z_hat.shape[:2], dtype)
    g_z_hat = (dtype.type(2) * w)[..., None] * difference  # ∂ℓ/∂ẑ = 2(ẑ − ĉ)
    return (l2_normalize_backward(z_hat, norm, g_z_hat).astype(dtype, copy=False),)


@op(
    inputs={
        "z": FloatArray("V", "B", "D"),
        "u": FloatArray("D"),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z",),
    check=_check_brownian,
)
def brownian_diffusive_loss(z, u, *, reduction="mean"):
    r"""MSBReg's Brownian diffusive loss: push every embedding along one random direction per step.

    The local dispersive force of MSBReg. Instead of repelling each particle from its
    neighbours (which needs their coordinates), every step draws one random unit direction û
    (a normalized Gaussian, the same for the whole batch) and minimizes the mean cosine of
    the embeddings with it: each embedding takes a gradient step along −û projected onto its
    tangent plane, a random walk on the sphere (Brownian motion) that spreads clusters
    locally. Over steps the directions average out; within one step the term is linear in ẑ.

    Forward, for view v of image b::

        ẑ_vb = z_vb/‖z_vb‖,   û = u/‖u‖
        ℓ_vb = cos(z_vb, u) = ⟨ẑ_vb, û⟩
        L    = mean_{v,b} ℓ_vb                   (reduction="mean"; "sum"; "none": ℓ (V, B))

    Norms by ``row_norm`` (scaled where ``‖z‖²`` would over- or underflow).

    Backward. ``u`` is random data (no cotangent). With ``w_vb`` the cotangent of ℓ_vb
    (``L̄/(VB)`` for "mean"), ``∂ℓ_vb/∂ẑ_vb = û`` (``û/(VB)`` for the mean and unit z), then
    through ``ẑ = z/‖z‖`` (Jacobian ``(I − ẑẑᵀ)/‖z‖``)::

        z̄_vb = w_vb (û − ẑ_vb⟨ẑ_vb, û⟩)/‖z_vb‖

    orthogonal to ``z_vb`` (the loss ignores the norm), 0 where ẑ = ±û.

    The random direction is an input (refimpl draws nothing): pass a standard normal draw
    of shape (D,), new every step (the op normalizes it). The third-party code's second
    variant adds 1 to the cosine (``1 + cos``), a constant that changes neither gradient nor
    minimizer; its weight beside the centroid loss (``L_MC + 0.1·L_B``) is the caller's sum.

    Args:
        z: online-branch projections (V, B, D), float32 or float64, nonzero rows (normalized
            here).
        u: the step's random direction (D,), the same dtype, nonzero (normalized here).
        reduction: "mean" over all V·B terms (default: ``mean_{v,b}``, as the third-party
            ``sim.mean()``), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (V, B) for reduction="none", in the dtype of ``z``.

    Reference: Moon, Buracas, Park, Kim, Canny, *An Embedding-Dynamic Approach to
    Self-supervised Learning*, arXiv:2207.03552 (WACV 2023). No official code found; checked
    against a third-party PyTorch implementation (``CentroidDiffusionEMALoss.get_brownian_loss``:
    ``F.cosine_similarity(z, normalize(randn(1, D)))``, mean).

    >>> import numpy as np, refimpl
    >>> z = np.array([[[2.0, 0.0], [1.0, 1.0]]])  # one view of two images
    >>> u = np.array([0.0, 5.0])                   # û = e₂
    >>> round(float(refimpl.losses.brownian_diffusive_loss(z, u)), 12)  # (0 + 1/√2)/2
    0.353553390593
    """
    dtype = z.dtype
    z_hat, norm = l2_normalize(z)
    u_hat, _ = l2_normalize(u)
    per_entry = z_hat @ u_hat  # ⟨ẑ_vb, û⟩
    return reduce_rows(per_entry, reduction, dtype), (z_hat, norm, u_hat, reduction)


@brownian_diffusive_loss.defvjp
def brownian_diffusive_loss_backward(residuals, g_loss):
    z_hat, norm, u_hat, reduction = residuals
    dtype = z_hat.dtype
    w = _per_entry_weights(g_loss, reduction, z_hat.shape[:2], dtype)
    g_z_hat = w[..., None] * u_hat  # ∂ℓ/∂ẑ = û
    return (l2_normalize_backward(z_hat, norm, g_z_hat).astype(dtype, copy=False),)
