"""Conformance cases for `abc_parametrize` and `abc_init_std`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

#: abc_init_std takes only integers and returns float64 scalings: there is no float32 call
FLOAT64 = ("float64",)

NOTES = {
    "NEGATIVE_EXPONENT": "a < 0 (μP's input layer, a_1 = −½): the multiplier n^{−a} grows with n",
    "WIDTH_ONE": "n = 1: n^{−a} = 1 for every a, W = w exactly",
    "ZERO_EXPONENT": "a = 0 (SP, μP's hidden layers): W = w",
    "LARGE_WIDTH": "n = 2^20 with a = ±1: multipliers 1e-6 and 1e6, still far from float32's range",
    "SCALAR": "a 0-d parameter (a scalar gain)",
    "EMPTY": "a parameter with no elements",
    "MFP_DEPTH": "the mean-field parametrization exists for L = 1 only",
    "OUTPUT_LAYER": "layer L + 1 takes the output row of the table, not the hidden one",
}

_EXPONENTS = (-0.5, 0.0, 0.5, 1.0, -1.0)


def _parametrize_random(rng, rank, size):
    shape = tuple(int(d) for d in rng.integers(1, size + 1, size=rank))
    w = np.asarray(rng.standard_normal(shape) * float(rng.choice([0.01, 1.0, 30.0])))
    a = float(rng.choice([*_EXPONENTS, rng.uniform(-1.5, 1.5)]))
    n = int(rng.choice([1, 8, 64, 1000, int(rng.integers(2, 5000))]))
    return Sample("random", (w,), {"n": n, "a": a})


def _parametrize_edges():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 5))
    return [
        Sample(
            "μP input layer a = −½, n = 256",
            (w,),
            {"n": 256, "a": -0.5},
            flags=("NEGATIVE_EXPONENT",),
            comment="W = 16·w exactly (a power of two)",
        ),
        Sample("μP output layer a = ½, n = 1024", (w,), {"n": 1024, "a": 0.5}, comment="W = w/32"),
        Sample("mean-field output a = 1, n = 100", (w,), {"n": 100, "a": 1.0}),
        Sample("n = 1", (w,), {"n": 1, "a": 0.7}, flags=("WIDTH_ONE",)),
        Sample("a = 0", (w,), {"n": 4096, "a": 0.0}, flags=("ZERO_EXPONENT",)),
        Sample("n = 2^20, a = 1", (w,), {"n": 2**20, "a": 1.0}, flags=("LARGE_WIDTH",)),
        Sample("n = 2^20, a = −1", (w,), {"n": 2**20, "a": -1.0}, flags=("LARGE_WIDTH",)),
        Sample("scalar parameter", (np.array(1.25),), {"n": 9, "a": 0.5}, flags=("SCALAR",)),
        Sample("batch of layers (3, 4, 5)", (rng.standard_normal((3, 4, 5)),), {"n": 7, "a": 0.25}),
        Sample("empty parameter", (np.zeros((0, 3)),), {"n": 16, "a": 0.5}, flags=("EMPTY",)),
    ]


def _parametrize_known():
    return [
        Known(
            "μP input layer: n = 256, a = −½",
            (np.array([1.0, -2.0, 0.25]),),
            {"n": 256, "a": -0.5},
            values={"W": [16.0, -32.0, 4.0], "cotangent of 'w'": [16.0, 16.0, 16.0]},
            source="by hand: 256^{½} = 16; the cotangent of w is 16·(1, 1, 1)",
        )
    ]


register(
    OpCases(
        "abc_parametrize",
        dims={"rank": (0, 3), "size": (1, 6)},
        random=_parametrize_random,
        edges=_parametrize_edges,
        known=_parametrize_known,
        notes=NOTES,
        defaults={},
    )
)


def _init_random(rng, K, depth):
    parametrization = str(rng.choice(["mup", "sp", "ntp", "mfp"]))
    if parametrization == "mfp":
        depth = 1
    layer = rng.integers(1, depth + 2, size=K)
    n = int(rng.choice([1, 16, 128, 4096, int(rng.integers(2, 10_000))]))
    return Sample(
        "random", (layer,), {"depth": depth, "n": n, "parametrization": parametrization}, dtypes=FLOAT64
    )


def _init_edges():
    every = np.array([1, 2, 3, 4])
    return [
        Sample(
            "μP, L = 3, n = 64: every kind of layer",
            (every,),
            {"depth": 3, "n": 64, "parametrization": "mup"},
            flags=("OUTPUT_LAYER",),
            dtypes=FLOAT64,
            comment="multiplier (8, 1, 1, 1/8), init_std 1/8 everywhere, lr_scale 1",
        ),
        Sample(
            "NTP, L = 3, n = 64",
            (every,),
            {"depth": 3, "n": 64, "parametrization": "ntp"},
            dtypes=FLOAT64,
            comment="multiplier (1, 1/8, 1/8, 1/8), init_std 1",
        ),
        Sample(
            "SP, L = 3, n = 64",
            (every,),
            {"depth": 3, "n": 64, "parametrization": "sp"},
            dtypes=FLOAT64,
            comment="multiplier 1, init_std (1, 1/8, 1/8, 1/8)",
        ),
        Sample(
            "MFP, L = 1, n = 100",
            (np.array([1, 2]),),
            {"depth": 1, "n": 100, "parametrization": "mfp"},
            flags=("MFP_DEPTH", "OUTPUT_LAYER"),
            dtypes=FLOAT64,
            comment="multiplier (1, 1/100), init_std 1, lr_scale 100",
        ),
        Sample(
            "n = 1: every scaling is 1",
            (every,),
            {"depth": 3, "n": 1, "parametrization": "mup"},
            flags=("WIDTH_ONE",),
            dtypes=FLOAT64,
        ),
        Sample(
            "L = 1 (no hidden layer between input and output), μP",
            (np.array([2, 1, 2]),),
            {"depth": 1, "n": 16, "parametrization": "mup"},
            flags=("OUTPUT_LAYER",),
            dtypes=FLOAT64,
        ),
    ]


def _init_errors():
    return [
        ErrorCase(
            "layer above L + 1",
            (np.array([1, 2, 5]),),
            {"depth": 3, "n": 8, "parametrization": "mup"},
            match=r"'layer'.*\[1, L \+ 1\] = \[1, 4\]",
        ),
        ErrorCase(
            "mean field with L = 2",
            (np.array([1, 2, 3]),),
            {"depth": 2, "n": 8, "parametrization": "mfp"},
            match=r"'depth'.*L = 1 with parametrization 'mfp'",
        ),
    ]


def _init_known():
    return [
        Known(
            "μP, L = 3, n = 64",
            (np.array([1, 2, 3, 4]),),
            {"depth": 3, "n": 64, "parametrization": "mup"},
            values={"multiplier": [8.0, 1.0, 1.0, 0.125], "init_std": [0.125] * 4, "lr_scale": [1.0] * 4},
            source="arXiv:2011.14522 Definition 5.1 at n = 64, by hand",
        ),
        Known(
            "NTP, L = 2, n = 100",
            (np.array([1, 2, 3]),),
            {"depth": 2, "n": 100, "parametrization": "ntp"},
            values={"multiplier": [1.0, 0.1, 0.1], "init_std": [1.0] * 3, "lr_scale": [1.0] * 3},
            source="arXiv:2011.14522 §3 (NTP) at n = 100, by hand",
        ),
        Known(
            "MFP, L = 1, n = 100",
            (np.array([1, 2]),),
            {"depth": 1, "n": 100, "parametrization": "mfp"},
            values={"multiplier": [1.0, 0.01], "init_std": [1.0, 1.0], "lr_scale": [100.0, 100.0]},
            source="arXiv:2011.14522 §3 (mean field, L = 1) at n = 100, by hand",
        ),
    ]


register(
    OpCases(
        "abc_init_std",
        dims={"K": (1, 6), "depth": (1, 4)},
        random=_init_random,
        edges=_init_edges,
        errors=_init_errors,
        known=_init_known,
        notes=NOTES,
        defaults={},
    )
)
