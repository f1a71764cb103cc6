"""Prior-corrected prediction (thresholding) and class-balanced weights (A systematic study of
the class imbalance problem in convolutional neural networks)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, OneOf, Paper, RealScalar, op

__all__ = [
    "MODES",
    "NORMALIZATIONS",
    "PAPER",
    "class_balanced_weights",
    "prior_correction_predict",
]

MODES = ("effective_number", "inverse_frequency")
NORMALIZATIONS = ("mean_one", "sum_to_one")

PAPER = Paper(
    "A systematic study of the class imbalance problem in convolutional neural networks",
    arxiv="1710.05381",
    year=2018,
)


def _first_bad(values: np.ndarray, bad: np.ndarray) -> str:
    index = int(np.flatnonzero(bad)[0])
    return f"{values[index]:g} at index {index}"


def _check_priors(arguments) -> None:
    priors = arguments["priors"]
    not_positive = priors <= 0
    if bool(np.any(not_positive)):
        raise ArgumentError(
            "priors", "class priors π_c > 0 (log π_c must exist)", _first_bad(priors, not_positive)
        )


@op(
    inputs={"z": FloatArray("B", "K"), "priors": FloatArray("K")},
    outputs=("labels",),
    check=_check_priors,
)
def prior_correction_predict(z, priors):
    r"""Thresholding: predict the class with the largest posterior divided by its prior.

    A classifier trained on imbalanced data estimates ``p(c|x) ∝ p(x|c)·π_c``, with the
    training set's class priors π built in, so its argmax favours the frequent classes.
    Dividing the posterior by the prior removes that factor and leaves ``p(x|c)``: the
    decision a classifier trained on balanced classes would make. Buda et al. compare this
    thresholding with over- and undersampling and recommend it whenever the overall number
    of correctly classified cases matters; it needs no retraining.

    Forward, for softmax outputs ``p(c|x) = softmax(z)_c``::

        ŷ = argmax_c p(c|x) / π_c = argmax_c (z_c − log π_c)

    The two forms agree because ``log p(c|x) = z_c − lse(z)`` and ``lse(z)`` is the same for
    every class. The code evaluates the logit form: no softmax, no exp that could overflow,
    and a tiny posterior divided by a tiny prior loses nothing. The priors need not sum to 1
    (class counts work too): scaling π adds the same constant to every ``−log π_c``.
    Ties go to the lowest class index (``np.argmax``). Not differentiable: the output is an
    index.

    Args:
        z: logits (B, K), float32 or float64.
        priors: class priors π (K,), same float dtype, every π_c > 0 (a zero prior has no
            log and raises ``InputError``); typically the training set's class frequencies.

    Returns:
        labels: ŷ (B,), int64 class indices in [0, K).

    Reference: Buda, Maki, Mazurowski, *A systematic study of the class imbalance problem in
    convolutional neural networks*, Neural Networks 106 (2018), arXiv:1710.05381
    (thresholding: the network output ``y_i(x) = p(i|x)`` divided by the prior ``p(i)``, estimated
    from the training set's class counts).

    >>> import numpy as np, refimpl
    >>> z = np.array([[2.0, 1.0], [3.0, 0.0]])  # plain argmax: [0, 0]
    >>> refimpl.reweighting.prior_correction_predict(z, np.array([0.9, 0.1]))
    array([1, 0])
    """
    # z_c − log π_c: row 0 above gives [2 + 0.105, 1 + 2.303]
    corrected = z - np.log(priors)
    labels = np.argmax(corrected, axis=1)  # the first maximum: ties go to the lowest index
    return labels.astype(np.int64, copy=False), None


def _check_counts(arguments) -> None:
    counts = arguments["counts"]
    below_one = counts < 1
    if bool(np.any(below_one)):
        raise ArgumentError(
            "counts",
            "class counts n_c >= 1 (a class without examples has no weight)",
            _first_bad(counts, below_one),
        )


@op(
    inputs={
        "counts": FloatArray("K"),
        "mode": OneOf(*MODES),
        "beta": RealScalar(0, 1, high_open=True),
        "normalization": OneOf(*NORMALIZATIONS),
    },
    outputs=("weights",),
    check=_check_counts,
)
def class_balanced_weights(counts, *, mode="effective_number", beta=0.9999, normalization="mean_one"):
    r"""Per-class loss weights from class counts: inverse frequency or the effective number.

    Reweighting the loss of each example by a weight of its class is the cost-sensitive
    counterpart of resampling. ``"inverse_frequency"`` weighs class c by ``1/n_c``: every
    class then contributes the same total weight ``n_c·w_c``, as random oversampling to full
    balance does (Buda et al. draw each example with probability ∝ 1/n_c of its class).
    ``"effective_number"`` (Cui et al.) argues that new examples of a class increasingly
    overlap the ones already seen, so a class of n_c examples covers only
    ``E_{n_c} = (1 − β^{n_c})/(1 − β)`` effective examples, and weighs it by ``1/E_{n_c}``;
    β = 0 gives uniform weights (no reweighting), β → 1 tends to inverse frequency.

    Forward, for classes c = 1 … K::

        inverse_frequency:  u_c = 1/n_c                       (evaluated as n_min/n_c)
        effective_number:   u_c = 1/E_{n_c} = (1 − β)/(1 − β^{n_c})
        sum_to_one:         w_c = u_c / Σ_j u_j               (Σw = 1)
        mean_one:           w_c = K·u_c / Σ_j u_j             (Σw = K, mean weight 1)

    ``1 − β^{n}`` is evaluated as ``−expm1(n·log1p(β − 1))``: for β close to 1, ``β^n`` is
    close to 1 and the plain difference ``1 − np.power(β, n)`` loses digits (float64,
    β = 1 − 1e−9: weights off by 3e−9 relative; float32: any β within 6e−8 of 1 rounds to 1
    and the plain form divides 0 by 0), while β − 1, formed in float64 before the cast to
    the counts' dtype, keeps them all. With n_c >= 1 every
    u_c lies in (0, 1], so nothing overflows; dividing the counts by the smallest one first
    keeps ``1/n`` of huge counts away from underflow. Constant factors (1 − β, n_min)
    cancel in the normalization. Not differentiable: counts are data.

    Defaults: ``mode="effective_number"``, ``beta=0.9999`` (Cui et al.'s official script
    ``cifar_im_trainval_cb.sh`` sets ``BETA=0.9999``; the argparse default of
    ``src/cifar_main.py`` is 0, i.e. no reweighting) and ``normalization="mean_one"``
    (``src/cifar_main.py``: ``weights = weights / np.sum(weights) * num_classes``).

    Args:
        counts: class counts n (K,), float32 or float64, every n_c >= 1 (a class with no
            examples raises ``InputError``); need not be integers.
        mode: ``"effective_number"`` (default) or ``"inverse_frequency"``.
        beta: β in [0, 1) for the effective number (default 0.9999); unused by
            ``"inverse_frequency"``.
        normalization: ``"mean_one"`` (default; weights sum to K) or ``"sum_to_one"``.

    Returns:
        weights: w (K,), in the dtype of ``counts``; larger for rarer classes.

    Reference: Buda, Maki, Mazurowski, *A systematic study of the class imbalance problem in
    convolutional neural networks*, Neural Networks 2018, arXiv:1710.05381 (oversampling to
    full balance); Cui, Jia, Lin, Song, Belongie, *Class-Balanced Loss Based on Effective
    Number of Samples*, CVPR 2019, arXiv:1901.05555, official code
    richardaecn/class-balanced-loss (``src/cifar_main.py``).

    >>> import numpy as np, refimpl
    >>> counts = np.array([1.0, 2.0, 4.0])  # 1/n = [1, 1/2, 1/4], Σ = 7/4
    >>> refimpl.reweighting.class_balanced_weights(counts, mode="inverse_frequency",
    ...                                            normalization="sum_to_one")
    array([0.57142857, 0.28571429, 0.14285714])
    >>> refimpl.reweighting.class_balanced_weights(counts, beta=0.5)  # u = [1, 2/3, 8/15]
    array([1.36363636, 0.90909091, 0.72727273])
    """
    dtype = counts.dtype.type
    if mode == "inverse_frequency":
        # u_c = 1/n_c up to the factor n_min: ratios in (0, 1], no underflow for huge counts
        unnormalized = counts.min() / counts
    else:
        with np.errstate(divide="ignore"):  # β = 0: log β = −inf, β^n = 0, u_c = 1
            log_beta = np.log1p(dtype(beta - 1.0))  # β − 1 is exact
            one_minus_beta_power = -np.expm1(counts * log_beta)  # 1 − β^n without cancellation
        unnormalized = dtype(1.0 - beta) / one_minus_beta_power
    weights = unnormalized / unnormalized.sum()
    if normalization == "mean_one":
        weights = weights * dtype(counts.shape[0])
    return weights.astype(counts.dtype, copy=False), None
