"""Conformance cases for `prior_correction_predict` and `class_balanced_weights`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

# -- thresholding -------------------------------------------------------------------------------
PREDICT_NOTES = {
    "UNIFORM_PRIOR": "π uniform: the correction is a constant, ŷ = plain argmax of z",
    "FLIPPED": "the prior overturns the plain argmax (a frequent class loses to a rare one)",
    "TIE": "an exact tie of z − log π: the lowest class index wins (np.argmax)",
    "TINY_PRIOR": "π_c = 1e-300: log π = −690.8, a posterior/prior ratio would underflow then divide",
    "UNNORMALIZED": "priors given as counts (Σπ ≠ 1): the same labels as the normalized priors",
    "ONE_CLASS": "K = 1: every label is 0",
    "LARGE_LOGITS": "logits ±1e4: softmax(z)/π would overflow or give 0/π; z − log π does not",
}


def _priors(rng, K):
    priors = 10 ** rng.uniform(-3, 0, size=K)  # imbalanced, from 1e-3 to 1 before normalization
    return priors / priors.sum()


def _predict_random(rng, B, K):
    z = rng.standard_normal((B, K)) * float(rng.choice([0.5, 3.0, 20.0]))
    return Sample("random", (z, _priors(rng, K)))


def _predict_edges():
    z = np.array([[2.0, 1.0, -0.5], [0.3, 2.2, 2.1], [-1.0, 0.0, 4.0]])
    return [
        Sample("uniform prior", (z, np.full(3, 1 / 3)), flags=("UNIFORM_PRIOR",), comment="[0, 1, 2]"),
        Sample(
            "prior flips the argmax",
            (np.array([[2.0, 1.0], [3.0, 0.0]]), np.array([0.9, 0.1])),
            flags=("FLIPPED",),
            comment="z − log π = [[2.105, 3.303], [3.105, 2.303]]: [1, 0]",
        ),
        Sample(
            "exact tie",
            (np.array([[3.0, 3.0, 0.0, 0.0], [0.0, 0.0, 4.0, 4.0]]), np.array([0.1, 0.1, 0.4, 0.4])),
            flags=("TIE",),
            comment="rows tie between classes 0 and 1, then 2 and 3: [0, 2]",
        ),
        Sample(
            "prior 1e-300",
            (np.array([[0.0, 600.0, 1.0], [0.0, 700.0, 1.0]]), np.array([1e-300, 1.0, 0.5])),
            flags=("TINY_PRIOR",),
            dtypes=("float64",),  # 1e-300 is 0 in float32
            comment="[0, 1]: 690.8 beats 600, not 700",
        ),
        Sample("priors as counts", (z, np.array([5000.0, 50.0, 1.0])), flags=("UNNORMALIZED",)),
        Sample("one class", (np.array([[3.0], [-2.0]]), np.array([1.0])), flags=("ONE_CLASS",)),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 1e4 - 2.0], [-1e4, 0.0, 1e4]]), np.array([0.8, 0.15, 0.05])),
            flags=("LARGE_LOGITS",),
            comment="[2, 2]",
        ),
    ]


def _predict_errors():
    z = np.zeros((2, 3))
    return [
        ErrorCase("a zero prior", (z, np.array([0.5, 0.0, 0.5])), match=r"'priors'.*π_c > 0.*index 1"),
        ErrorCase("a negative prior", (z, np.array([0.5, 0.6, -0.1])), match=r"'priors'.*π_c > 0.*index 2"),
    ]


def _predict_known():
    return [
        Known(
            "z = [2, 1], π = [0.9, 0.1]",
            (np.array([[2.0, 1.0], [3.0, 0.0], [1.0, 1.0]]), np.array([0.9, 0.1])),
            values={"labels": [1, 0, 1]},
            source="by hand: z − log π = [2.105, 3.303], [3.105, 2.303], [1.105, 3.303]",
        ),
        Known(
            "the first author's example: counts [100, 400, 500], y = [0.2, 0.2, 0.6]",
            (np.log(np.array([[0.2, 0.2, 0.6]])), np.array([100.0, 400.0, 500.0])),
            values={"labels": [0]},
            source="M. Buda, 'Thresholding' (mateuszbuda.github.io, 2018): y ⊘ p = [2.0, 0.5, 1.2]",
        ),
        Known(
            "tie goes to the lowest index",
            (np.array([[0.0, 0.0, 0.0]]), np.array([0.2, 0.2, 0.6])),
            values={"labels": [0]},
            source="by hand: −log π = [1.609, 1.609, 0.511]; np.argmax takes the first maximum",
        ),
    ]


register(
    OpCases(
        "prior_correction_predict",
        dims={"B": (1, 8), "K": (1, 9)},
        random=_predict_random,
        edges=_predict_edges,
        errors=_predict_errors,
        known=_predict_known,
        notes=PREDICT_NOTES,
        defaults={},
    )
)


# -- class-balanced weights ---------------------------------------------------------------------
WEIGHT_NOTES = {
    "BETA_ZERO": "β = 0: β^n = 0 (log β = −inf must not warn or give nan); uniform weights",
    "BETA_NEAR_ONE": "β = 1 − 1e−9: 1 − β^n cancels (float64: 3e−9 off; float32: β rounds to 1, 0/0); "
    "−expm1(n·log1p(β − 1)) keeps every digit",
    "EQUAL_COUNTS": "equal counts: uniform weights (1 each for mean_one, 1/K for sum_to_one)",
    "ONE_CLASS": "K = 1: w = 1 under both normalizations",
    "UNDERFLOW": "β^n underflows to 0 for n = 1e12: E_n = 1/(1 − β) exactly",
    "HUGE_COUNTS": "counts 1e36: 1/n is 1e-36 (near float32's smallest normal); n_min/n is not",
    "DEFAULTS": "the published defaults: effective number, β = 0.9999, weights summing to K",
}

MODES = ("effective_number", "inverse_frequency")
NORMALIZATIONS = ("mean_one", "sum_to_one")


def _counts(rng, K):
    counts = np.floor(10 ** rng.uniform(0, float(rng.choice([1.0, 3.0, 6.0])), size=K))
    if rng.random() < 0.3:
        counts = counts + rng.random(K)  # soft (non-integer) counts, still >= 1
    return counts


def _weights_random(rng, K):
    kwargs = {
        "mode": str(rng.choice(MODES)),
        "beta": float(rng.choice([0.0, 0.5, 0.9, 0.99, 0.999, 0.9999])),
        "normalization": str(rng.choice(NORMALIZATIONS)),
    }
    return Sample("random", (_counts(rng, K),), kwargs)


# CIFAR-10-LT with imbalance factor 0.02, as the official src/data_utils.py get_img_num_per_cls
# ("10", 0.02) builds it: int(5000·0.02^(c/9)) = [5000, 3237, 2096, ..., 154, 100]
CIFAR10_LT_COUNTS = np.array([float(int(5000 * 0.02 ** (c / 9.0))) for c in range(10)])


def _weights_edges():
    counts = np.array([1.0, 2.0, 3.0, 40.0, 500.0])
    return [
        Sample("β = 0", (counts,), {"beta": 0.0}, flags=("BETA_ZERO",), comment="[1, 1, 1, 1, 1]"),
        Sample(
            "β = 1 − 1e-9",
            (np.array([1.0, 7.0, 100.0, 1000.0]),),
            {"beta": 1 - 1e-9, "normalization": "sum_to_one"},
            flags=("BETA_NEAR_ONE",),
            comment="inverse frequency to about 5e-7",
        ),
        Sample("equal counts", (np.full(4, 250.0),), {"mode": "inverse_frequency"}, flags=("EQUAL_COUNTS",)),
        Sample("equal counts, effective number", (np.full(3, 7.0),), {"beta": 0.9}, flags=("EQUAL_COUNTS",)),
        Sample("one class", (np.array([17.0]),), {"normalization": "sum_to_one"}, flags=("ONE_CLASS",)),
        Sample("β^n underflows", (np.array([1e12, 5e6, 1.0]),), {"beta": 0.9999}, flags=("UNDERFLOW",)),
        Sample(
            "counts 1e36, inverse frequency",
            (np.array([1e36, 3e35, 1.0]),),
            {"mode": "inverse_frequency", "normalization": "sum_to_one"},
            flags=("HUGE_COUNTS",),
        ),
        Sample("CIFAR-10-LT (imbalance 0.02), defaults", (CIFAR10_LT_COUNTS,), flags=("DEFAULTS",)),
        Sample(
            "CIFAR-10-LT, inverse frequency",
            (CIFAR10_LT_COUNTS,),
            {"mode": "inverse_frequency"},
        ),
    ]


def _weights_errors():
    return [
        ErrorCase(
            "a class with no examples", (np.array([10.0, 0.0, 3.0]),), match=r"'counts'.*n_c >= 1.*index 1"
        ),
        ErrorCase(
            "a fractional count below 1",
            (np.array([10.0, 2.0, 0.5]),),
            {"mode": "inverse_frequency"},
            match=r"'counts'.*n_c >= 1.*index 2",
        ),
    ]


def _weights_known():
    counts = np.array([1.0, 2.0, 4.0])
    return [
        Known(
            "inverse frequency, n = [1, 2, 4], sum_to_one",
            (counts,),
            {"mode": "inverse_frequency", "normalization": "sum_to_one"},
            values={"weights": [4 / 7, 2 / 7, 1 / 7]},
            source="by hand: 1/n = [1, 1/2, 1/4], Σ = 7/4",
            rtol=1e-15,
        ),
        Known(
            "inverse frequency, n = [1, 2, 4], mean_one",
            (counts,),
            {"mode": "inverse_frequency", "normalization": "mean_one"},
            values={"weights": [12 / 7, 6 / 7, 3 / 7]},
            source="by hand: 3·[4, 2, 1]/7",
            rtol=1e-15,
        ),
        Known(
            "effective number, β = 0.5, n = [1, 2, 4], mean_one",
            (counts,),
            {"beta": 0.5},
            values={"weights": [15 / 11, 10 / 11, 8 / 11]},
            source="by hand: 1 − β^n = [1/2, 3/4, 15/16], u = (1 − β)/(1 − β^n) = [1, 2/3, 8/15], Σu = 11/5",
            rtol=1e-15,
        ),
        Known(
            "effective number, β = 0.9, n = [1, 2], sum_to_one",
            (np.array([1.0, 2.0]),),
            {"beta": 0.9, "normalization": "sum_to_one"},
            values={"weights": [19 / 29, 10 / 29]},
            source="by hand: 1 − β^n = [0.1, 0.19], u = [1, 10/19], Σu = 29/19",
            rtol=1e-14,
        ),
    ]


register(
    OpCases(
        "class_balanced_weights",
        dims={"K": (1, 12)},
        random=_weights_random,
        edges=_weights_edges,
        errors=_weights_errors,
        known=_weights_known,
        notes=WEIGHT_NOTES,
        # Cui et al.'s official code: BETA=0.9999 in cifar_im_trainval_cb.sh, and
        # `weights / np.sum(weights) * num_classes` in src/cifar_main.py
        defaults={"mode": "effective_number", "beta": 0.9999, "normalization": "mean_one"},
    )
)
