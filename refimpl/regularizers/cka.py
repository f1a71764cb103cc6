"""Linear CKA and the representational-alignment loss of *Training the Untrainable* (guidance)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import ArgumentError, Flag, FloatArray, Paper, RealScalar, array_namespace, op
from .bido import _power_of_two_scale

__all__ = [
    "PAPER",
    "guide_layer_mapping",
    "linear_cka",
    "linear_cka_backward",
    "linear_cka_value",
    "official_layer_pairs",
    "representational_alignment_loss",
]

PAPER = Paper(
    "Training the Untrainable: Introducing Inductive Bias via Representational Alignment",
    arxiv="2410.20035",
    year=2024,
    code="vsubramaniam851/untrainable-networks",
)

OFFICIAL_ALPHA = (
    1.0  # imagenet-comparison/args.py, language_modeling/args.py: --alpha (rep_sim_alpha) default 1.0
)


# -- shared pieces (plain functions: both ops and the backends' fallbacks are built from them) --
def _centered_scaled(X: np.ndarray) -> tuple[np.ndarray, float]:
    """``X̂ = (X − 1 x̄ᵀ)/s`` with s a power of two near ``max|X − 1 x̄ᵀ|`` (CKA ignores s)."""
    X_c = X - X.mean(axis=0)
    scale = _power_of_two_scale(X_c)  # BiDO's helper: a power of two near max|X_c|
    return X_c / X.dtype.type(scale), scale


def linear_cka_value(X: np.ndarray, Y: np.ndarray):
    """``CKA(X, Y)`` and the residuals of its VJP (the forward of ``linear_cka``)."""
    X_hat, scale_x = _centered_scaled(X)
    Y_hat, scale_y = _centered_scaled(Y)
    K = X_hat @ X_hat.T  # = H (X Xᵀ) H / s_x²: the centred Gram matrix
    L = Y_hat @ Y_hat.T
    h = np.sum(K * L)  # ⟨K, L⟩_F = ‖Ŷᵀ X̂‖_F²
    norm_K = np.sqrt(np.sum(K * K))
    norm_L = np.sqrt(np.sum(L * L))
    cka = h / (norm_K * norm_L)
    return cka, (X_hat, Y_hat, scale_x, scale_y, K, L, h, norm_K, norm_L)


def linear_cka_backward(residuals, g: Any, need_y: bool = True):
    """``(X̄, Ȳ)`` of ``CKA``; ``Ȳ`` is None when ``need_y`` is False (a stopped-gradient guide)."""
    X_hat, Y_hat, scale_x, scale_y, K, L, h, norm_K, norm_L = residuals
    dtype = X_hat.dtype.type
    weight = dtype(g) / (norm_K * norm_L)
    # K̄ = ḡ/(‖K‖‖L‖)·(L − (h/‖K‖²) K);  X̂̄ = (K̄ + K̄ᵀ) X̂ = 2 K̄ X̂;  X̄ = C X̂̄ / s_x
    g_K = weight * (L - (h / norm_K / norm_K) * K)
    g_X = _center_columns(2 * (g_K @ X_hat)) / dtype(scale_x)
    if not need_y:
        return g_X, None
    g_L = weight * (K - (h / norm_L / norm_L) * L)
    g_Y = _center_columns(2 * (g_L @ Y_hat)) / dtype(scale_y)
    return g_X, g_Y


def _center_columns(A: np.ndarray) -> np.ndarray:
    """``C A`` with ``C = I − 11ᵀ/n``: the VJP of column-centring (C is symmetric)."""
    return A - A.mean(axis=0)


def guide_layer_mapping(num_guide: int, num_target: int) -> list[int]:
    """The official pairing of guide layer i (of ``num_guide``) with a target layer.

    ``rep_sim/layer_sim.py`` ``layer_supervision``: ``step = (n_t − 1)/(n_g − 1)`` (1 when
    ``n_g = 1``), guide layer i → target layer ``min(round(i·step), n_t − 1)``, with Python's
    ``round`` (halves to even). When ``n_g > n_t`` several guide layers fall on one target
    layer and ``layermap_sim`` stores the scores in a dict keyed by the target layer, so only
    the last guide layer mapped there is counted: :func:`official_layer_pairs` returns the
    pairs that survive.

    >>> guide_layer_mapping(3, 5)
    [0, 2, 4]
    """
    step = (num_target - 1) / (num_guide - 1) if num_guide > 1 else 1
    return [min(round(i * step), num_target - 1) for i in range(num_guide)]


def official_layer_pairs(num_guide: int, num_target: int) -> list[tuple[int, int]]:
    """``(guide layer, target layer)`` pairs whose ``1 − CKA`` the official loss sums.

    >>> official_layer_pairs(5, 3)  # guide layers 0..4 → targets [0, 0, 1, 2, 2]: the last wins
    [(1, 0), (2, 1), (4, 2)]
    """
    kept: dict[int, int] = {}
    for guide, target in enumerate(guide_layer_mapping(num_guide, num_target)):
        kept[target] = guide  # the dict keyed by the target layer: a later guide layer overwrites
    return [(guide, target) for target, guide in kept.items()]


def _varies_across_rows(name: str, value, where: str = "") -> None:
    xp = array_namespace(value)
    if value.shape[0] < 2 or not bool(xp.any(value != value[:1])):
        raise ArgumentError(
            name,
            "rows (examples) that are not all equal: CKA divides by ‖HKH‖_F, which is 0 for a "
            "single example or identical rows",
            f"{value.shape[0]} row(s), all equal{where}",
        )


def _check_cka(arguments: Mapping[str, Any]) -> None:
    _varies_across_rows("X", arguments["X"])
    _varies_across_rows("Y", arguments["Y"])


# -- linear_cka ---------------------------------------------------------------------------------
@op(
    inputs={"X": FloatArray("n", "p"), "Y": FloatArray("n", "q")},
    outputs=("cka",),
    differentiable=("X", "Y"),
    check=_check_cka,
)
def linear_cka(X, Y):
    r"""Linear centered kernel alignment between two sets of representations of the same examples.

    CKA compares two layers by the similarity of their example-by-example Gram matrices,
    after centring: 1 when one representation is an orthogonal transform and isotropic
    rescaling of the other (plus a shift), near 0 for unrelated ones. It is the biased-HSIC
    estimator normalized: ``HSIC(K, L)/sqrt(HSIC(K, K) HSIC(L, L))``, where the (m − 1)⁻²
    factors cancel.

    Forward. Rows are examples. ``H = I − 11ᵀ/n``; ``X_c = H X``, ``Y_c = H Y``::

        K = X_c X_cᵀ = H (X Xᵀ) H          L = Y_c Y_cᵀ
        h = ⟨K, L⟩_F = ‖Y_cᵀ X_c‖_F²
        CKA(X, Y) = h / (‖K‖_F ‖L‖_F) = ‖Y_cᵀX_c‖_F² / (‖X_cᵀX_c‖_F ‖Y_cᵀY_c‖_F)

    The code centres the columns first (``X_c = X − mean``: no ``HXXᵀH`` cancellation for an
    offset X) and divides ``X_c`` by a power of two ``s_x`` near ``max|X_c|`` (exact; CKA is
    invariant to isotropic scaling), so ``K`` neither overflows nor underflows in float32.

    Backward. ``CKA = h/(‖K‖‖L‖)`` with ``∂h/∂K = L`` and ``∂‖K‖/∂K = K/‖K‖``::

        K̄ = ḡ·[L/(‖K‖‖L‖) − h K/(‖K‖³‖L‖)] = ḡ/(‖K‖‖L‖)·(L − (h/‖K‖²) K)

    ``K = X_c X_cᵀ`` gives ``dK = dX_c X_cᵀ + X_c dX_cᵀ``, so ``X̄_c = (K̄ + K̄ᵀ) X_c = 2 K̄ X_c``
    (K̄ is symmetric); ``X_c = H X`` with H symmetric gives ``X̄ = H X̄_c`` (subtract the
    column means), i.e.::

        X̄ = ḡ·H·[2/(‖K‖‖L‖)·(L X_c − (h/‖K‖²) K X_c)]

    and symmetrically ``Ȳ`` with K and L exchanged. On the scaled ``X̂ = X_c/s_x`` the same
    formula gives ``∂/∂X̂``, and ``X̄ = (∂/∂X̂)/s_x``.

    Invariants: ``CKA(X, X) = 1``; ``0 ≤ CKA ≤ 1``; unchanged by ``X → c X Q + 1bᵀ`` (Q
    orthogonal, c ≠ 0) on either side; symmetric in X and Y. Minibatch CKA is the biased
    (V-statistic) HSIC estimator, as in the official code; n = 2 always gives 1 (rank-one
    centred Grams).

    Args:
        X: representations (n, p), float32 or float64, rows not all equal.
        Y: representations (n, q) of the same n examples, same dtype, rows not all equal.

    Returns:
        cka: a scalar in [0, 1] (0-d array, dtype of X).

    Reference: Subramaniam et al., *Training the Untrainable: Introducing Inductive Bias via
    Representational Alignment*, arXiv:2410.20035; official code vsubramaniam851/untrainable-networks
    (``rep_sim/rep_sims.py``, ``CKA.linear_CKA``); Kornblith et al. 2019 for linear CKA.

    >>> import numpy as np, refimpl
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> round(float(refimpl.regularizers.linear_cka(X, X)), 12)  # 1 up to rounding
    1.0
    >>> Y = np.array([[1.0], [-1.0], [0.0]])  # Y_cᵀX_c = [1, −1]; X_cᵀX_c = [[2, −1], [−1, 2]]/3
    >>> round(float(refimpl.regularizers.linear_cka(X, Y)), 12)  # 2/(2·√10/3) = 3/√10
    0.948683298051
    """
    cka, residuals = linear_cka_value(X, Y)
    return np.asarray(cka, dtype=X.dtype), residuals


@linear_cka.defvjp
def _linear_cka_vjp(residuals, g_cka):
    g_X, g_Y = linear_cka_backward(residuals, g_cka)
    return g_X, g_Y


# -- representational_alignment_loss ------------------------------------------------------------
def _check_alignment(arguments: Mapping[str, Any]) -> None:
    target, guide = arguments["target"], arguments["guide"]
    if arguments["token_sim"]:
        if target.shape[1] != guide.shape[1]:
            raise ArgumentError(
                "guide",
                f"as many token positions as 'target' (token_sim=True compares the (B, D) slices "
                f"position by position), T = {target.shape[1]}",
                f"{guide.shape[1]} positions",
            )
        for t in range(target.shape[1]):
            _varies_across_rows("target", target[:, t], f" at token position {t}")
            _varies_across_rows("guide", guide[:, t], f" at token position {t}")
    else:
        _varies_across_rows("target", target)
        _varies_across_rows("guide", guide)


def _alignment_slices(target, guide, token_sim):
    """The (B, ·) pairs compared: the flattened activations, or one pair per token position."""
    batch = target.shape[0]
    if token_sim:
        return [(target[:, t], guide[:, t]) for t in range(target.shape[1])]
    return [(target.reshape(batch, -1), guide.reshape(batch, -1))]


@op(
    inputs={
        "target": FloatArray("B", "T", "D"),
        "guide": FloatArray("B", "S", "E"),
        "alpha": RealScalar(0),
        "token_sim": Flag(),
    },
    outputs=("loss",),
    differentiable=("target",),
    check=_check_alignment,
)
def representational_alignment_loss(target, guide, *, alpha=OFFICIAL_ALPHA, token_sim=False):
    r"""Guidance's representational-alignment term for one mapped layer pair: ``α(1 − CKA)``.

    Guidance trains an "untrainable" target network while pulling each of its layers towards
    the representation of a frozen guide network on the same batch, measured by linear CKA.
    The guide's activations are taken in eval mode under ``no_grad`` (a stopped gradient), so
    only the target's activations receive a gradient.

    Forward (official ``rep_sim/layer_sim.py`` ``layermap_sim`` with ``rep_sim="CKA"``)::

        token_sim = False:  A = target.view(B, −1),  G = guide.view(B, −1)
                            loss = α·(1 − CKA(A, sg[G]))
        token_sim = True:   loss = α·Σ_t (1 − CKA(target[:, t], sg[guide[:, t]]))   (T = S)

    with CKA the linear CKA of :func:`linear_cka`. The full objective is
    ``L_task + α Σ_l (1 − CKA(A_l, sg[G_l]))``, summed (not averaged) over the mapped layer
    pairs (``rep_sim_loss.py`` ``rep_similarity_loss``: ``torch.sum`` of the stacked scores;
    ``image_class.py``/``language_model.py`` ``total_loss``: ``ce + rep_sim_alpha·rep_sim``):
    call this op once per pair from :func:`official_layer_pairs` and add the results (α
    multiplies each term, so the sum is α times the official sum).

    Backward. ``∂(α(1 − CKA))/∂A = −α ∂CKA/∂A`` (:func:`linear_cka`'s VJP with ``ḡ → −αḡ``);
    the flattening is a reshape, so the gradient is reshaped back; with ``token_sim`` each
    position's slice gets its own term's gradient. No gradient flows to ``guide``.

    Precision: the official code casts both activations to float32 before the CKA; here the
    computation runs in the inputs' dtype (float32 reproduces it, float64 is the exact value).
    Official options not covered: ``rep_sim="RSA"`` (``layermap_sim`` computes it, but
    ``rep_similarity_loss`` raises ``NotImplementedError`` for anything but CKA) and
    ``use_noise`` (the guide fed random inputs: a choice of the guide's input, outside the op).

    Args:
        target: the trained (target) network's activations (B, T, D), float32 or float64; a
            layer with activations of another shape is reshaped by the caller (a (B, D)
            feature map is (B, 1, D)).
        guide: the frozen guide network's activations on the same batch (B, S, E).
        alpha: the weight α ≥ 0 (official ``--alpha``, ``rep_sim_alpha``, default 1.0).
        token_sim: compare the token positions one by one and sum (official ``token_sim``;
            requires T = S).

    Returns:
        loss: a scalar ≥ 0 (0-d array, dtype of target).

    Reference: arXiv:2410.20035; official code vsubramaniam851/untrainable-networks
    (``rep_sim/rep_sims.py`` ``CKA.linear_CKA``, ``rep_sim/layer_sim.py`` ``layermap_sim``,
    ``tokenwise_sim``, ``layer_supervision``, ``rep_sim/rep_sim_loss.py``).

    >>> import numpy as np, refimpl
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])[:, None, :]
    >>> loss = refimpl.regularizers.representational_alignment_loss(A, 3 * A + 1, alpha=2.0)
    >>> abs(float(loss)) < 1e-15  # an affine image of the target: CKA = 1 up to round-off
    True
    >>> G = np.array([[1.0], [-1.0], [0.0]])[:, None, :]
    >>> round(float(refimpl.regularizers.representational_alignment_loss(A, G)), 12)  # 1 − 3/√10
    0.051316701949
    """
    terms = [linear_cka_value(A, G) for A, G in _alignment_slices(target, guide, token_sim)]
    total = sum(1 - cka for cka, _ in terms)
    loss = np.asarray(alpha * total, dtype=target.dtype)
    return loss, ([residuals for _, residuals in terms], target.shape, alpha, token_sim)


@representational_alignment_loss.defvjp
def _representational_alignment_loss_vjp(residuals, g_loss):
    per_term, shape, alpha, token_sim = residuals
    g_terms = [linear_cka_backward(r, -alpha * float(g_loss), need_y=False)[0] for r in per_term]
    if token_sim:
        g_target = np.stack(g_terms, axis=1)
    else:
        g_target = g_terms[0].reshape(shape)
    return (g_target,)
