"""Conformance cases for `mup_param_group_scaling`."""

from __future__ import annotations

import numpy as np

from ..._cases import Known, OpCases, Sample, register

#: the op takes only integers and booleans and returns float64 multipliers: no float32 call
FLOAT64 = ("float64",)

NOTES = {
    "BASE_EQUALS_SHAPE": "shape = base shape: every dimension finite, every multiplier exactly 1",
    "NONSQUARE_HIDDEN": "a (4n, n) hidden weight: SGD's fan-in/fan-out ratio is not 1 "
    "(lr ×= mult_out/mult_in); a rule that uses width_mult alone gets it wrong",
    "READOUT": "the readout (d_out, n): vector-like (Adam lr ×1, SGD lr ×width_mult) with "
    "readout_mult = output_mult/width_mult",
    "EXPLICIT_INFINITE": "a width dimension equal to its base but marked infinite (a delta model): "
    "it counts in ninf, turning a vector-like parameter into a matrix-like one",
    "NARROWER": "a model narrower than its base: multipliers below 1 (lr grows for Adam's hidden weights)",
    "LAST_INFINITE": "only fan_out is infinite: width_mult is fan_out's (the last infinite dimension)",
}


def _random(rng, P, base):
    base_width = int(base)
    widths = [base_width, int(rng.integers(1, 4 * base_width + 1)), int(rng.integers(1, 4 * base_width + 1))]
    rows, base_rows = [], []
    for _ in range(P):
        kind = rng.integers(0, 5)
        fixed = int(rng.integers(1, 12))
        w_out, w_in = (int(rng.integers(0, 3)) for _ in range(2))
        scale_out, scale_in = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if kind == 0:  # input layer (width, fixed)
            rows.append((widths[w_out] * scale_out, fixed))
            base_rows.append((base_width * scale_out, fixed))
        elif kind == 1:  # hidden (width, width)
            rows.append((widths[w_out] * scale_out, widths[w_in] * scale_in))
            base_rows.append((base_width * scale_out, base_width * scale_in))
        elif kind == 2:  # readout (fixed, width)
            rows.append((fixed, widths[w_in] * scale_in))
            base_rows.append((fixed, base_width * scale_in))
        elif kind == 3:  # bias (width, 1)
            rows.append((widths[w_out] * scale_out, 1))
            base_rows.append((base_width * scale_out, 1))
        else:  # fixed-size parameter
            rows.append((fixed, fixed))
            base_rows.append((fixed, fixed))
    shapes, base_shapes = np.array(rows), np.array(base_rows)
    readout = (shapes[:, 0] < 12) & (shapes[:, 1] != base_shapes[:, 1]) & (rng.random(P) < 0.7)
    args = (shapes, base_shapes, readout)
    if rng.random() < 0.3:
        infinite = (shapes != base_shapes) | (rng.random((P, 2)) < 0.3)
        args = (*args, infinite)
    kwargs = {
        "optimizer": str(rng.choice(["adam", "sgd"])),
        "output_mult": float(rng.choice([1.0, 0.5, 2.0, rng.uniform(0.1, 10.0)])),
    }
    return Sample("random", args, kwargs, dtypes=FLOAT64)


def _mlp(width, base):
    shapes = np.array([[width, 10], [width, 1], [width, width], [width, 1], [3, width], [3, 1]])
    base_shapes = np.array([[base, 10], [base, 1], [base, base], [base, 1], [3, base], [3, 1]])
    readout = np.array([False, False, False, False, True, False])
    return shapes, base_shapes, readout


def _edges():
    shapes, base_shapes, readout = _mlp(512, 128)
    wide_hidden = np.array([[512, 128], [128, 512], [96, 32]])
    wide_hidden_base = np.array([[128, 32], [32, 128], [64, 32]])
    return [
        Sample(
            "base shape = shape, Adam",
            (shapes, shapes, readout),
            {"optimizer": "adam", "output_mult": 1.0},
            flags=("BASE_EQUALS_SHAPE",),
            dtypes=FLOAT64,
        ),
        Sample(
            "base shape = shape, SGD, output_mult 2",
            (shapes, shapes, readout),
            {"optimizer": "sgd", "output_mult": 2.0},
            flags=("BASE_EQUALS_SHAPE",),
            dtypes=FLOAT64,
            comment="readout_mult = output_mult = 2: width_mult is 1",
        ),
        Sample(
            "MLP at 4× its base width, Adam",
            (shapes, base_shapes, readout),
            {"optimizer": "adam"},
            flags=("READOUT",),
            dtypes=FLOAT64,
            comment="hidden lr ×1/4, wd ×4; the rest 1; readout_mult 1/4",
        ),
        Sample(
            "MLP at 4× its base width, SGD",
            (shapes, base_shapes, readout),
            {"optimizer": "sgd"},
            flags=("READOUT",),
            dtypes=FLOAT64,
            comment="vector-like lr ×4, wd ×1/4; hidden ratio 1",
        ),
        Sample(
            "non-square hidden weights, SGD",
            (wide_hidden, wide_hidden_base, np.zeros(3, dtype=bool)),
            {"optimizer": "sgd"},
            flags=("NONSQUARE_HIDDEN", "NARROWER"),
            dtypes=FLOAT64,
            comment="ratios 4/4, 4/4, 1/1.5: lr 1, 1, 1.5",
        ),
        Sample(
            "a width dimension equal to its base, marked infinite, Adam",
            (
                np.array([[64, 256], [256, 64]]),
                np.array([[64, 64], [64, 64]]),
                np.array([False, False]),
                np.array([[True, True], [True, True]]),
            ),
            {"optimizer": "adam"},
            flags=("EXPLICIT_INFINITE", "LAST_INFINITE"),
            dtypes=FLOAT64,
            comment="matrix-like: lr ×1/4 (fan_in ×4) and ×1 (fan_in ×1); unmarked, the second "
            "would be vector-like",
        ),
        Sample(
            "only fan_out infinite, SGD",
            (np.array([[300, 7]]), np.array([[100, 7]]), np.array([False])),
            {"optimizer": "sgd"},
            flags=("LAST_INFINITE",),
            dtypes=FLOAT64,
            comment="width_mult = 3: lr ×3, wd ×1/3",
        ),
        Sample(
            "narrower than the base, Adam",
            (np.array([[32, 32], [5, 32]]), np.array([[128, 128], [5, 128]]), np.array([False, True])),
            {"optimizer": "adam", "output_mult": 0.5},
            flags=("NARROWER", "READOUT"),
            dtypes=FLOAT64,
            comment="hidden lr ×4; readout_mult = 0.5·4 = 2",
        ),
    ]


def _known():
    shapes, base_shapes, readout = _mlp(512, 128)
    return [
        Known(
            "MLP at 4× its base width, Adam",
            (shapes, base_shapes, readout),
            {"optimizer": "adam"},
            values={
                "lr_mult": [1.0, 1.0, 0.25, 1.0, 1.0, 1.0],
                "weight_decay_mult": [1.0, 1.0, 4.0, 1.0, 1.0, 1.0],
                "readout_mult": [1.0, 1.0, 1.0, 1.0, 0.25, 1.0],
            },
            source="microsoft/mup mup/optim.py MuAdam and mup/layer.py MuReadout, by hand",
        ),
        Known(
            "MLP at 4× its base width, SGD, output_mult 2",
            (shapes, base_shapes, readout),
            {"optimizer": "sgd", "output_mult": 2.0},
            values={
                "lr_mult": [4.0, 4.0, 1.0, 4.0, 4.0, 1.0],
                "weight_decay_mult": [0.25, 0.25, 1.0, 0.25, 0.25, 1.0],
                "readout_mult": [1.0, 1.0, 1.0, 1.0, 0.5, 1.0],
            },
            source="microsoft/mup mup/optim.py MuSGD and mup/layer.py MuReadout, by hand",
        ),
    ]


register(
    OpCases(
        "mup_param_group_scaling",
        dims={"P": (1, 8), "base": (1, 64)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        defaults={"infinite": None, "output_mult": 1.0},
    )
)
