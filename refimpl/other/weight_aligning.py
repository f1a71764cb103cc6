"""Weight Aligning (WA) for class-incremental learning: aligning the norms of the new classes'
classifier weights with the old ones' (Maintaining Discrimination and Fairness in Class
Incremental Learning, Zhao et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntScalar,
    Paper,
    known_deviation,
    op,
    row_norm,
)

__all__ = ["PAPER", "wa_weight_clipping", "weight_aligning"]

PAPER = Paper(
    "Maintaining Discrimination and Fairness in Class Incremental Learning",
    arxiv="1911.07053",
    year=2020,
    code="bwbwzhao/Weight-Aligning",
)


def _row_norms(weight: np.ndarray, p: int) -> np.ndarray:
    """‖w_i‖_p of every row, in float64 (ℓ2 computed scaled where its squares leave the range)."""
    rows = weight.astype(np.float64)
    if p == 1:
        return np.abs(rows).sum(axis=1)
    return row_norm(rows)[:, 0]


def _check_aligning(arguments) -> None:
    weight, num_old, official = arguments["weight"], arguments["num_old"], arguments["official"]
    classes = weight.shape[0]
    if num_old >= classes:
        raise ArgumentError(
            "num_old",
            f"fewer old classes than rows of 'weight' (K = {classes}): at least one new class",
            f"num_old = {num_old}",
        )
    new = weight[num_old:]
    host = np.asarray(new.get() if hasattr(new, "get") else new)
    if not np.any(host != 0):
        raise ArgumentError(
            "weight",
            "new-class rows with a nonzero norm (γ = mean old norm/mean new norm is infinite "
            "when every new row is 0)",
            f"rows {num_old}..{classes - 1} all zero",
        )
    del official


@op(
    inputs={
        "weight": FloatArray("K", "D"),
        "num_old": IntScalar(1),
        "official": Flag(),
    },
    outputs=("weight", "gamma"),
    check=_check_aligning,
)
def weight_aligning(weight, *, num_old, official=False):
    r"""Weight Aligning: rescale the new classes' classifier rows so their mean norm equals
    the old classes' mean norm.

    After an incremental step trained mostly on new-class data, the classifier's new-class
    weight vectors are longer than the old-class ones, so the model is biased towards the new
    classes. WA corrects the bias after training by scaling every new-class row by one
    factor γ, the ratio of the mean norms: old and new logits then come on the same scale.

    Forward, with rows ``w_1..w_{n_old}`` (old classes) and ``w_{n_old+1}..w_K`` (new)::

        γ = mean_{i ≤ n_old} ‖w_i‖₂ / mean_{j > n_old} ‖w_j‖₂
        W_new ← γ·W_new,   W_old unchanged              (the bias is left unchanged)

    A second call returns γ = 1 (the mean new norm now equals the mean old norm), which is
    what makes PyCIL's double call of its alignment per task harmless. Not differentiated
    (a post-hoc correction).

    ``official=True`` reproduces the first author's code: the norms are ℓ1 (``--norm``
    default 1) and γ is clamped to at most 1; that code applies γ to the new-class logits at
    test time, which for its bias-free classifier (``--withbias`` off) is the same as scaling
    the rows, as here.

    Args:
        weight: classifier weight W (K, D), float32 or float64, old classes first.
        num_old: n_old, the number of old classes (1 ≤ n_old < K; rows n_old.. are new).
        official: ℓ1 norms and γ ≤ 1, as the original code (default False: PyCIL's ℓ2).

    Returns:
        weight: the aligned W (K, D), new rows scaled by γ.
        gamma: γ, a 0-d array. Both in the dtype of ``weight``.

    Reference: Zhao, Xiao, Gan, Zhang, Xia, *Maintaining Discrimination and Fairness in
    Class Incremental Learning*, CVPR 2020, arXiv:1911.07053; PyCIL (G-U-N/PyCIL,
    ``utils/inc_net.py``, ``weight_align``: ℓ2 norms, new rows scaled, no clamp); the original
    code bwbwzhao/Weight-Aligning, ``iLearn.py`` (ℓ1 norms, γ clamped to 1, applied to logits).

    >>> import numpy as np, refimpl
    >>> w = np.array([[3.0, 4.0], [0.0, 10.0]])          # old norm 5, new norm 10: γ = 0.5
    >>> aligned, gamma = refimpl.other.weight_aligning(w, num_old=1)
    >>> aligned, float(gamma)
    (array([[3., 4.],
           [0., 5.]]), 0.5)
    """
    norms = _row_norms(weight, 1 if official else 2)
    gamma = norms[:num_old].mean() / norms[num_old:].mean()
    if official:
        gamma = min(gamma, 1.0)  # clamp_(max=1.0)
    aligned = weight.copy()
    aligned[num_old:] = weight[num_old:] * weight.dtype.type(gamma)
    return (aligned, np.asarray(gamma, dtype=weight.dtype)), None


@op(
    inputs={"weight": FloatArray("...")},
    outputs=("weight",),
)
def wa_weight_clipping(weight):
    r"""WA's weight clipping: set the classifier weights' negative entries to 0 after every
    optimizer step.

    With nonnegative weights (and features after a ReLU) every logit is a sum of
    nonnegative terms, so a row's norm says how strongly it responds: the norms that Weight
    Aligning compares are then meaningful. The original code does this by default after each
    ``optimizer.step()``; PyCIL omits it.

    Forward, elementwise::

        W ← max(W, 0)

    Not differentiated (a projection applied to the parameters between steps).

    Args:
        weight: the classifier weight W, any shape, float32 or float64.

    Returns:
        weight: ``max(W, 0)``, same shape and dtype.

    Reference: Zhao et al., *Maintaining Discrimination and Fairness in Class Incremental
    Learning*, CVPR 2020, arXiv:1911.07053 (weight clipping); the original code
    bwbwzhao/Weight-Aligning, ``iLearn.py`` (``train_model``: ``fc.weight.clamp_(0)`` under
    ``--restrict``, on by default; the classifier has no bias by default).

    >>> import numpy as np, refimpl
    >>> refimpl.other.wa_weight_clipping(np.array([[0.5, -1.0], [-0.2, 2.0]]))
    array([[0.5, 0. ],
           [0. , 2. ]])
    """
    return np.maximum(weight, weight.dtype.type(0)), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    weight_aligning,
    name="weight-aligning-l1-clamped",
    source="bwbwzhao/Weight-Aligning, iLearn.py (the stage loop: torch.norm(fc.weight, p=args.norm), "
    "--norm default 1, alpha.clamp_(max=1.0))",
    official="γ from ℓ1 row norms and clamped to at most 1, applied to the new-class logits at test time",
    paper="γ = mean old norm/mean new norm of the weight vectors, the new rows rescaled (PyCIL's "
    "weight_align, ℓ2 norms, no clamp)",
    example=Example(
        args=(np.array([[3.0, 4.0], [0.0, 1.0]]),),
        kwargs={"num_old": 1},
        official={"gamma": 1.0},
        reference={"gamma": 5.0},
    ),
    flag={"official": True},
)
