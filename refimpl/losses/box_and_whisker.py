"""The box-and-whisker filter of negative-pair similarities (Unified Negative Pair Generation
toward Well-discriminative Feature Space for Face Recognition, UNPG)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, Paper, RealScalar, l2_normalize, op

__all__ = ["PAPER", "box_and_whisker_filter"]

PAPER = Paper(
    "Unified Negative Pair Generation toward Well-discriminative Feature Space for Face Recognition",
    arxiv="2203.11593",
    year=2022,
    code="Jung-Jun-Uk/UNPG",
)


def _check(arguments) -> None:
    x = arguments["x"]
    zero_rows = np.flatnonzero(~np.any(x != 0, axis=1))
    if zero_rows.size:
        raise ArgumentError(
            "x",
            "nonzero feature rows (x̂ = x/‖x‖ needs ‖x‖ > 0)",
            f"row {int(zero_rows[0])} is all zeros",
        )


def _negative_pairs(x_hat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``s_n = {⟨x̂_i, x̂_j⟩ : i < j, y_i ≠ y_j}`` in row-major pair order, with the pairs' i and j."""
    similarity = x_hat @ x_hat.T
    first, second = np.triu_indices(x_hat.shape[0], k=1)  # i < j, row-major as the official triu
    negative = y[first] != y[second]
    first, second = first[negative], second[negative]
    return similarity[first, second], first, second


@op(
    inputs={"x": FloatArray("B", "D"), "y": IntArray("B", low=0), "w": RealScalar(0)},
    outputs=("kept", "pairs"),
    check=_check,
)
def box_and_whisker_filter(x, y, *, w=1.5):
    r"""UNPG's box-and-whisker filter: drop the outlying negative-pair similarities of a batch.

    UNPG appends the similarities of the batch's negative pairs (different identities) to
    every row's classification logits, so that the softmax also sees hard negatives that
    the class weights never produce. Some of those pairs are noise (mislabeled or
    near-duplicate faces: similarities far above the rest), so it first keeps only the
    similarities inside the whiskers of a box plot, Tukey's fences at ``w`` interquartile
    ranges beyond the quartiles.

    Forward (as the official ``convert_label_to_similarity`` and
    ``box_and_whisker_algorithm`` compute it)::

        x̂_i     = x_i / ‖x_i‖                               (the official F.normalize)
        s_n     = {⟨x̂_i, x̂_j⟩ : i < j, y_i ≠ y_j},   l = |s_n|
        sorted  = sort(s_n)                                 (ascending)
        Q1      = sorted[⌊0.25·l⌋],   Q3 = sorted[⌊0.75·l⌋],   IQR = Q3 − Q1
        kept    = {s ∈ sorted : Q1 − w·IQR <= s <= Q3 + w·IQR}   (in ascending order)

    The quartiles are elements picked by index, without the interpolation of a percentile
    function (``np.percentile`` gives other fences). Both fences are closed, so with
    ``w = 0`` the values from Q1 to Q3 stay. The norm is computed scaled where ``‖x‖²``
    would overflow or underflow, so the result depends only on the directions of the
    rows. Equal similarities keep their row-major pair order (a stable sort; the official
    ``torch.sort`` leaves that order unspecified, the values are the same).

    Not differentiable here: the filter is piecewise constant in the similarities (the
    gradient of UNPG flows through the kept similarities themselves, in the loss).

    Edge cases: a batch without a negative pair (one identity, or B = 1) has l = 0; the
    official code then fails on ``sorted_x[0]``, and the reference returns nothing (no
    extra logits). ``F.normalize`` clamps ‖x‖ below 1e-12, so a zero row gives zero
    similarities there; here a zero row is refused and every other row is normalized
    exactly.

    Args:
        x: features (B, D), float32 or float64, no row all zeros (normalized inside).
        y: identity labels (B,), integers >= 0; pairs with equal labels are positives and
            are not filtered.
        w: whisker length w >= 0 in IQRs (default 1.5: the official config
            ``recognition/data/head.zoo.yaml``, ``unpg: wisk: 1.5``; the ``UNPG`` module's own
            default of 1.0 is overridden by it).

    Returns:
        kept: the kept negative similarities (l',), ascending, in the dtype of ``x``.
        pairs: the pair (i, j), i < j, of each kept similarity (l', 2), int64.

    Reference: Jung, Lee, Oh, Park, Park, Son, *Unified Negative Pair Generation toward
    Well-discriminative Feature Space for Face Recognition*, BMVC 2022, arXiv:2203.11593;
    official code Jung-Jun-Uk/UNPG (``recognition/models/build.py``,
    ``box_and_whisker_algorithm`` and ``convert_label_to_similarity``).

    >>> import numpy as np, refimpl
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    >>> kept, pairs = refimpl.losses.box_and_whisker_filter(x, np.arange(5), w=0.25)
    >>> kept  # l = 10, Q1 = sorted[2] = −0.6, Q3 = sorted[7] = 0.8: fences −0.95, 1.15
    array([-0.8 , -0.6 ,  0.  ,  0.  ,  0.6 ,  0.6 ,  0.8 ,  0.8 ,  0.96])
    >>> pairs[0], pairs[-1]  # the pair (0, 2), ⟨x̂_0, x̂_2⟩ = −1, is dropped
    (array([2, 4]), array([3, 4]))
    """
    x_hat, _ = l2_normalize(x)  # eps = 0: zero rows were refused by the check
    s_n, first, second = _negative_pairs(x_hat, y)
    length = s_n.shape[0]
    if length == 0:  # no negative pair: nothing to append (the official code fails here)
        return (s_n, np.empty((0, 2), dtype=np.int64)), None
    order = np.argsort(s_n, kind="stable")
    sorted_s = s_n[order]
    lower_quartile = sorted_s[length // 4]  # ⌊0.25·l⌋: an element, no interpolation
    upper_quartile = sorted_s[(3 * length) // 4]  # ⌊0.75·l⌋
    iqr = upper_quartile - lower_quartile
    whisker = x.dtype.type(w)
    minimum = lower_quartile - whisker * iqr
    maximum = upper_quartile + whisker * iqr
    keep = (sorted_s >= minimum) & (sorted_s <= maximum)
    pairs = np.stack([first[order][keep], second[order][keep]], axis=1).astype(np.int64)
    return (sorted_s[keep], pairs), None
