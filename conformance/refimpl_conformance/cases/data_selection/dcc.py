"""Conformance cases for `gradient_matching_distance` and `dcc_contrastive_gradient`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ONE_DIM": "a 1-D parameter (bias, norm) contributes exactly 0 and gets zero gradients",
    "CONV": "a conv gradient (out, in, h, w) is compared per output channel: rows (out, in·h·w)",
    "RANK3": "a (C, h, w) gradient: rows (C, h·w)",
    "PARALLEL": "b_r = s·a_r: each row contributes ≈ 0 (only ε remains)",
    "ZERO_SYN_ROW": "‖b_r‖ = 0: the zero subgradient of the norm; the gradient there is −a_r/ε",
    "ZERO_REAL_ROW": "‖a_r‖ = 0: the row contributes 1 and its gradient is 0",
    "EPS_PLACEMENT": "ε is added to ‖a‖‖b‖, not to each norm: visible with tiny gradients",
    "DC": "contrast=False: the class-wise sum",
}


def _layer_shape(rng, rows, cols, rank):
    if rank == 1:
        return (cols,)
    if rank == 2:
        return (rows, cols)
    if rank == 3:
        return (rows, 2, cols)
    return (rows, 2, 2, cols)


def _pair(rng, shape):
    # scales where ‖a‖‖b‖ ≫ ε: near ‖a‖‖b‖ ~ ε the map bends sharply (the "tiny" edge case)
    g_real = rng.standard_normal(shape) * float(rng.choice([0.1, 1.0, 30.0]))
    # a synthetic gradient partly aligned with the real one
    g_syn = float(rng.choice([0.0, 0.5, 2.0])) * g_real + rng.standard_normal(shape) * float(
        rng.choice([0.1, 1.0, 30.0])
    )
    return g_real, g_syn


def _random_layer(rng, R, K):  # noqa: N803
    rank = int(rng.choice([1, 2, 2, 3, 4]))
    g_real, g_syn = _pair(rng, _layer_shape(rng, R, K, rank))
    return Sample("random", (g_real, g_syn), {"eps": float(rng.choice([1e-6, 1e-6, 0.1]))})


def _random_classes(rng, C, R, K):  # noqa: N803
    rank = int(rng.choice([1, 2, 2, 3, 4]))
    g_real, g_syn = _pair(rng, (C, *_layer_shape(rng, R, K, rank)))
    kwargs = {"contrast": bool(rng.integers(0, 3)), "eps": float(rng.choice([1e-6, 1e-6, 0.1]))}
    return Sample("random", (g_real, g_syn), kwargs)


def _layer_edges():
    rng = np.random.default_rng(114)
    a = rng.standard_normal((3, 5))
    zero_syn = rng.standard_normal((3, 5))
    zero_syn[1] = 0.0
    zero_real = a.copy()
    zero_real[2] = 0.0
    conv = rng.standard_normal((4, 3, 2, 2))
    return [
        Sample("1-D parameter", (rng.standard_normal(6), rng.standard_normal(6)), flags=("ONE_DIM",)),
        Sample("conv (4, 3, 2, 2)", (conv, conv + 0.3 * rng.standard_normal(conv.shape)), flags=("CONV",)),
        Sample(
            "(C, h, w) = (3, 2, 4)",
            (rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))),
            flags=("RANK3",),
        ),
        Sample("parallel rows b = 2a", (a, 2.0 * a), flags=("PARALLEL",)),
        Sample("antiparallel rows b = −a", (a, -a), flags=("PARALLEL",)),
        Sample(
            "zero synthetic row",
            (a, zero_syn),
            flags=("ZERO_SYN_ROW",),
            fd=False,
            comment="‖b‖ has no derivative at 0; the zero subgradient is checked in the tests",
        ),
        Sample("zero real row", (zero_real, rng.standard_normal((3, 5))), flags=("ZERO_REAL_ROW",)),
        Sample(
            "tiny gradients ~1e-4 (ε comparable to ‖a‖‖b‖)",
            (1e-4 * a, 1e-4 * rng.standard_normal((3, 5))),
            flags=("EPS_PLACEMENT",),
            dtypes=("float64",),
        ),
    ]


def _class_edges():
    rng = np.random.default_rng(115)
    g_real = rng.standard_normal((3, 4, 5))
    g_syn = rng.standard_normal((3, 4, 5))
    return [
        Sample(
            "per-class 1-D parameter",
            (rng.standard_normal((3, 6)), rng.standard_normal((3, 6))),
            flags=("ONE_DIM",),
        ),
        Sample("DC (contrast=False)", (g_real, g_syn), {"contrast": False}, flags=("DC",)),
        Sample(
            "DCC, conv layer",
            (rng.standard_normal((2, 3, 2, 2, 2)), rng.standard_normal((2, 3, 2, 2, 2))),
            flags=("CONV",),
        ),
        Sample("one class: DC = DCC", (g_real[:1], g_syn[:1])),
    ]


def _layer_errors():
    a = np.ones((2, 3))
    zero_row = a.copy()
    zero_row[1] = 0.0
    return [
        ErrorCase("rank 5", (np.ones((2, 1, 1, 1, 3)),) * 2, match="rank 1 to 4"),
        ErrorCase("rank 0", (np.array(1.0), np.array(1.0)), match=r"'g_real'"),
        ErrorCase("zero row with eps = 0", (a, zero_row), {"eps": 0.0}, match=r"'g_syn'.*row 1 is zero"),
    ]


def _class_errors():
    a = np.ones((2, 2, 3))
    zero_class_row = a.copy()
    zero_class_row[1, 0] = 0.0
    return [
        ErrorCase("no class axis", (np.ones(3), np.ones(3)), match="per-class"),
        ErrorCase("rank 6", (np.ones((2, 2, 1, 1, 1, 3)),) * 2, match="per-class"),
        ErrorCase(
            "DC: a class's zero row with eps = 0",
            (a, zero_class_row),
            {"contrast": False, "eps": 0.0},
            match=r"'g_syn'.*row 2 is zero",
        ),
        ErrorCase(
            "DCC: a zero mean row with eps = 0",
            (a, np.stack([a[0], -a[0]])),
            {"eps": 0.0},
            match=r"'g_syn'.*row 0 is zero",
        ),
    ]


def _layer_known():
    return [
        Known(
            "one parallel and one orthogonal row, ε = 0",
            (np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[3.0, 0.0], [1.0, 0.0]])),
            {"eps": 0.0},
            values={"distance": 1.0, "cotangent of 'g_syn'": [[0.0, 0.0], [0.0, -1.0]]},
            source="by hand: row 0 cos = 1 (gradient 0), row 1 cos = 0 (gradient −a/(‖a‖‖b‖))",
            rtol=1e-12,
            atol=1e-15,
        ),
        Known(
            "ε placement: a = b = (1e-3, 0)",
            (np.array([[1e-3, 0.0]]), np.array([[1e-3, 0.0]])),
            values={"distance": 1.0 - 1e-6 / (1e-6 + 1e-6)},
            source="by hand: 1 − ⟨a, b⟩/(‖a‖‖b‖ + 1e-6) = 1/2 (ε inside the product's sum)",
            rtol=1e-12,
        ),
    ]


def _class_known():
    g_real = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    g_syn = np.array([[[0.0, 1.0]], [[1.0, 0.0]]])
    return [
        Known(
            "swapped class gradients: DC 2, DCC 0",
            (g_real, g_syn),
            {"contrast": False, "eps": 0.0},
            values={"distance": 2.0, "cotangent of 'g_syn'": [[[-1.0, 0.0]], [[0.0, -1.0]]]},
            source="by hand: two orthogonal pairs, ḡ_b = −a/(‖a‖‖b‖)",
            rtol=1e-12,
            atol=1e-15,
        ),
        Known(
            "swapped class gradients, DCC",
            (g_real, g_syn),
            {"eps": 0.0},
            values={"distance": 0.0},
            source="by hand: both class means are (½, ½)",
            atol=1e-15,
        ),
    ]


def _torch_distance(torch, real_rows, syn_rows, eps):
    dot = (real_rows * syn_rows).sum(-1)
    denominator = torch.norm(real_rows, dim=-1) * torch.norm(syn_rows, dim=-1) + eps
    return (1 - dot / denominator).sum()


def _gmd_torch(torch, args, kwargs, cotangent):
    """``distance_wb``: rows (out, rest), Σ(1 − ⟨a, b⟩/(‖a‖‖b‖ + ε)); autograd backward."""
    g_real = torch.from_numpy(args[0])
    g_syn = torch.from_numpy(args[1]).requires_grad_()
    g = torch.tensor(float(np.asarray(cotangent)), dtype=g_syn.dtype)
    eps = kwargs.get("eps", 1e-6)

    def step():
        g_syn.grad = None
        rows = g_real.shape[0]
        distance = _torch_distance(torch, g_real.reshape(rows, -1), g_syn.reshape(rows, -1), eps)
        distance.backward(g)
        return distance

    return step


def _dcc_torch(torch, args, kwargs, cotangent):
    """DCC: the layer distance of the class means (DC: of each class pair, summed); autograd."""
    g_real = torch.from_numpy(args[0])
    g_syn = torch.from_numpy(args[1]).requires_grad_()
    g = torch.tensor(float(np.asarray(cotangent)), dtype=g_syn.dtype)
    eps = kwargs.get("eps", 1e-6)
    contrast = kwargs.get("contrast", True)

    def step():
        g_syn.grad = None
        if contrast:
            rows = g_real.shape[1]
            real_rows, syn_rows = g_real.mean(0).reshape(rows, -1), g_syn.mean(0).reshape(rows, -1)
        else:
            rows = g_real.shape[0] * g_real.shape[1]
            real_rows, syn_rows = g_real.reshape(rows, -1), g_syn.reshape(rows, -1)
        distance = _torch_distance(torch, real_rows, syn_rows, eps)
        distance.backward(g)
        return distance

    return step


def _layer_bench(rng, rows, cols):
    g_real = rng.standard_normal((rows, cols))
    return Sample("bench", (g_real, 0.5 * g_real + rng.standard_normal((rows, cols))))


def _class_bench(rng, rows, cols):
    shape = (10, rows, cols)  # CIFAR-10's ten classes
    g_real = rng.standard_normal(shape)
    return Sample("bench", (g_real, 0.5 * g_real + rng.standard_normal(shape)))


register(
    OpCases(
        "gradient_matching_distance",
        dims={"R": (1, 5), "K": (1, 7)},
        random=_random_layer,
        edges=_layer_edges,
        errors=_layer_errors,
        known=_layer_known,
        notes=NOTES,
        defaults={"eps": 1e-6},
        bench=Bench(
            make=_layer_bench,
            torch=_gmd_torch,
            torch_label="rows (out, rest); Σ(1 − ⟨a, b⟩/(‖a‖‖b‖ + ε)) with torch.norm; autograd backward",
            transcendentals=lambda args, kwargs: 2 * args[0].shape[0],  # two square roots per row
        ),
    )
)

register(
    OpCases(
        "dcc_contrastive_gradient",
        dims={"C": (1, 4), "R": (1, 4), "K": (1, 6)},
        random=_random_classes,
        edges=_class_edges,
        errors=_class_errors,
        known=_class_known,
        notes=NOTES,
        defaults={"contrast": True, "eps": 1e-6},
        bench=Bench(
            make=_class_bench,
            torch=_dcc_torch,
            torch_label="class means, rows (out, rest), Σ(1 − ⟨a, b⟩/(‖a‖‖b‖ + ε)); autograd backward",
            transcendentals=lambda args, kwargs: 2 * args[0].shape[1],
        ),
    )
)
