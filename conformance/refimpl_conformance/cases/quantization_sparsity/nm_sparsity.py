"""Conformance cases for `nm_mask`, `nm_sparse_weight` (custom VJP: checked against the stated
formula) and `sdgf_schedule`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "TIES": "equal |w| in a group (equal values, ±w, zeros): the stable order prunes the lower index "
    "first; every backend must apply that rule (an unstable or descending sort breaks it)",
    "KEEP_ALL": "N = M: nothing pruned (the dense frame of a schedule); SR-STE's decay term vanishes",
    "KEEP_ONE": "N = 1: only the group's largest |w| survives",
    "CONV": "a conv weight (out, in, kh, kw) grouped along the input channels: a port that groups "
    "along kw (the memory-contiguous axis) gives another mask",
    "BATCH": "leading axes: every row of every matrix is grouped on its own",
    "NEGATIVE": "magnitudes, not values, rank the weights: large negative weights are kept",
    "DECAYED": "β_t = 0 (linear decay past 1/c): the forward is the binary mask, the backward still dense",
}

VARIANTS = ("sr_ste", "step", "mdgf_linear", "mdgf_exp")


def _shape(rng, rows, groups, M, conv):  # noqa: N803
    """A weight shape whose grouped axis holds ``groups`` groups of M."""
    if conv:
        return (rows, groups * M, int(rng.integers(1, 4)), int(rng.integers(1, 3)))
    lead = [(), (rows,), (2, rows)][int(rng.integers(0, 3))]
    return (*lead, groups * M)


def _draw_nm(rng):
    M = int(rng.choice([2, 4, 8]))  # noqa: N806
    return int(rng.integers(1, M + 1)), M


def _weights(rng, shape):
    return rng.standard_normal(shape) * float(rng.choice([0.02, 1.0, 30.0]))


def _mask_random(rng, R, G):  # noqa: N803
    N, M = _draw_nm(rng)  # noqa: N806
    conv = bool(rng.random() < 0.3)
    W = _weights(rng, _shape(rng, R, G, M, conv))  # noqa: N806
    return Sample("random", (W,), {"N": N, "M": M, "conv": conv})


def _tie_rows():
    """Groups of 4 with exact ties in |w| (and one without)."""
    return np.array(
        [
            [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            [0.5, -0.5, 0.5, -0.5, 2.0, -2.0, 1.0, 2.0],
            [3.0, 0.0, 0.0, 3.0, -1.0, 4.0, -4.0, 0.25],
        ]
    )


def _mask_edges():
    rng = np.random.default_rng(202)
    conv_W = rng.standard_normal((3, 8, 2, 3))  # noqa: N806
    return [
        Sample(
            "known value: 2:4",
            (np.array([[0.1, -0.9, 0.5, 0.2, 1.0, 1.0, 1.0, 1.0]]),),
            {"N": 2, "M": 4},
            flags=("TIES", "NEGATIVE"),
            comment="keeps −0.9, 0.5; the tied group keeps positions 6, 7",
        ),
        Sample("ties, 2:4", (_tie_rows(),), {"N": 2, "M": 4}, flags=("TIES",)),
        Sample("ties, 1:4", (_tie_rows(),), {"N": 1, "M": 4}, flags=("TIES", "KEEP_ONE")),
        Sample("ties, 3:4", (_tie_rows(),), {"N": 3, "M": 4}, flags=("TIES",)),
        Sample("ties, 2:8", (_tie_rows(),), {"N": 2, "M": 8}, flags=("TIES",)),
        Sample("N = M", (rng.standard_normal((2, 8)),), {"N": 4, "M": 4}, flags=("KEEP_ALL",)),
        Sample("M = 1", (rng.standard_normal((2, 3)),), {"N": 1, "M": 1}, flags=("KEEP_ALL",)),
        Sample("conv weight, 2:4", (conv_W,), {"N": 2, "M": 4, "conv": True}, flags=("CONV",)),
        Sample("conv weight, 1:8", (conv_W,), {"N": 1, "M": 8, "conv": True}, flags=("CONV", "KEEP_ONE")),
        Sample(
            "conv weight with ties",
            (np.round(conv_W),),
            {"N": 2, "M": 4, "conv": True},
            flags=("CONV", "TIES"),
        ),
        Sample("vector", (rng.standard_normal(16),), {"N": 1, "M": 16}, flags=("KEEP_ONE",)),
        Sample("batch of matrices", (rng.standard_normal((2, 3, 8)),), {"N": 2, "M": 4}, flags=("BATCH",)),
    ]


def _mask_errors():
    return [
        ErrorCase("N > M", (np.ones((2, 4)),), {"N": 5, "M": 4}, match="at most M = 4"),
        ErrorCase("row not divisible by M", (np.ones((4, 6)),), {"N": 2, "M": 4}, match="divisible by M = 4"),
        ErrorCase(
            "conv flag on a matrix", (np.ones((4, 8)),), {"N": 2, "M": 4, "conv": True}, match="rank 4"
        ),
        ErrorCase(
            "conv input channels not divisible by M",
            (np.ones((2, 6, 3, 4)),),
            {"N": 2, "M": 4, "conv": True},
            match="input channels",
        ),
    ]


def _mask_torch(torch, args, kwargs, cotangent):
    """The official rule in PyTorch: a stable argsort of |w| per group, the first M − N zeroed."""
    W = torch.from_numpy(args[0])  # noqa: N806
    N, M = kwargs["N"], kwargs["M"]  # noqa: N806

    def step():
        with torch.no_grad():
            groups = W.abs().reshape(-1, M)
            order = torch.argsort(groups, dim=1, stable=True)
            keep = torch.ones_like(groups, dtype=torch.bool).scatter_(1, order[:, : M - N], False)
            return keep.reshape(W.shape)

    return step


def _bench_weight(rng, rows, cols):
    cols = max(8, cols - cols % 8)
    return Sample("bench", (rng.standard_normal((rows, cols)),))


register(
    OpCases(
        "nm_mask",
        dims={"R": (1, 4), "G": (1, 3)},
        random=_mask_random,
        edges=_mask_edges,
        errors=_mask_errors,
        notes=NOTES,
        defaults={"conv": False},
        bench=Bench(
            make=_bench_weight,
            kwargs={"N": 2, "M": 4},
            torch=_mask_torch,
            torch_label="torch.argsort(|W|.reshape(-1, M), stable=True), first M − N scattered to False",
        ),
    )
)


# -- nm_sparse_weight ---------------------------------------------------------------------
def _ranks(groups):
    """Position of each |w| in its group's stable ascending order, by counting (no sort):
    #{i: a_i < a_j} + #{i < j: a_i = a_j}."""
    a = groups[:, :, None]
    b = groups[:, None, :]
    below = (b < a).sum(axis=2)
    lower_index = np.tril(np.ones((groups.shape[1],) * 2, dtype=bool), k=-1)  # [j, i]: i < j
    tied_before = ((b == a) & lower_index[None]).sum(axis=2)
    return below + tied_before


def independent_mask(W, N, M, conv):  # noqa: N803
    """The N:M mask by counting ranks (a second derivation of the reference's sort)."""
    rows = np.transpose(W, (0, 2, 3, 1)) if conv else W
    groups = np.abs(rows).reshape(-1, M)
    keep = (_ranks(groups) >= M - N).reshape(rows.shape)
    return np.transpose(keep, (0, 3, 1, 2)) if conv else keep


def stated_sparse_weight_vjp(args, kwargs, cotangents):
    """SR-STE: G + λ_W(1 − m)W; step/MDGF: G; exact: G ⊙ (m + (1 − m)β_t); float64."""
    W = np.asarray(args[0], dtype=np.float64)  # noqa: N806
    (g,) = (np.asarray(c, dtype=np.float64) for c in cotangents)
    variant = kwargs["variant"]
    m = independent_mask(W, kwargs["N"], kwargs["M"], kwargs.get("conv", False)).astype(np.float64)
    if variant == "sr_ste":
        return [g + kwargs.get("lambda_w", 2e-4) * (1.0 - m) * W]
    if not kwargs.get("exact_grad", False):
        return [g]
    t, c = kwargs.get("step"), kwargs.get("decay_rate")
    if variant == "step":
        beta = 0.0
    elif variant == "mdgf_linear":
        beta = max(1.0 - c * t, 0.0)
    else:
        beta = math.exp(-c * t)
    return [g * (m + (1.0 - m) * beta)]


def _weight_random(rng, R, G):  # noqa: N803
    N, M = _draw_nm(rng)  # noqa: N806
    conv = bool(rng.random() < 0.25)
    W = _weights(rng, _shape(rng, R, G, M, conv))  # noqa: N806
    variant = str(rng.choice(VARIANTS))
    kwargs = {"N": N, "M": M, "variant": variant, "conv": conv}
    if variant == "sr_ste":
        kwargs["lambda_w"] = float(rng.choice([2e-4, 0.05, 1.0]))
    else:
        kwargs["exact_grad"] = bool(rng.random() < 0.5)
    if variant.startswith("mdgf"):
        kwargs["step"] = int(rng.choice([0, 3, 100, 5000]))
        kwargs["decay_rate"] = float(rng.choice([2e-4, 0.01, 0.3]))
    return Sample("random", (W,), kwargs)


def _weight_edges():
    rng = np.random.default_rng(203)
    W = rng.standard_normal((3, 8))  # noqa: N806
    conv_W = rng.standard_normal((2, 4, 2, 2))  # noqa: N806
    mdgf = {"step": 10, "decay_rate": 0.05}
    return [
        Sample(
            "known value: MDGF-linear, β = 1/4",
            (np.array([[4.0, -1.0, 2.0, 3.0]]),),
            {"N": 2, "M": 4, "variant": "mdgf_linear", "step": 3, "decay_rate": 0.25},
        ),
        Sample(
            "known value: SR-STE, λ = 0.5",
            (np.array([[4.0, -1.0, 2.0, 3.0]]),),
            {"N": 2, "M": 4, "variant": "sr_ste", "lambda_w": 0.5},
        ),
        Sample("SR-STE, ties", (_tie_rows(),), {"N": 2, "M": 4, "variant": "sr_ste"}, flags=("TIES",)),
        Sample(
            "exact gradient, ties",
            (_tie_rows(),),
            {"N": 1, "M": 4, "variant": "mdgf_exp", "exact_grad": True, **mdgf},
            flags=("TIES",),
        ),
        Sample("step, exact gradient", (W,), {"N": 2, "M": 4, "variant": "step", "exact_grad": True}),
        Sample(
            "MDGF-linear decayed to 0",
            (W,),
            {"N": 1, "M": 8, "variant": "mdgf_linear", "step": 100, "decay_rate": 0.05},
            flags=("DECAYED",),
        ),
        Sample(
            "MDGF-linear at t = 0 (dense forward)",
            (W,),
            {"N": 1, "M": 4, "variant": "mdgf_linear", "step": 0, "decay_rate": 0.05, "exact_grad": True},
        ),
        Sample("MDGF-exp", (W,), {"N": 2, "M": 8, "variant": "mdgf_exp", **mdgf}),
        Sample(
            "N = M, SR-STE", (W,), {"N": 4, "M": 4, "variant": "sr_ste", "lambda_w": 1.0}, flags=("KEEP_ALL",)
        ),
        Sample(
            "conv weight, SR-STE",
            (conv_W,),
            {"N": 2, "M": 4, "variant": "sr_ste", "lambda_w": 0.1, "conv": True},
            flags=("CONV",),
        ),
        Sample(
            "conv weight, MDGF-exp exact",
            (conv_W,),
            {"N": 1, "M": 2, "variant": "mdgf_exp", "exact_grad": True, "conv": True, **mdgf},
            flags=("CONV",),
        ),
    ]


def _weight_errors():
    W = np.ones((2, 8))  # noqa: N806
    return [
        ErrorCase(
            "mdgf without step",
            (W,),
            {"N": 2, "M": 4, "variant": "mdgf_exp", "decay_rate": 0.1},
            match="'step'",
        ),
        ErrorCase(
            "mdgf without decay_rate",
            (W,),
            {"N": 2, "M": 4, "variant": "mdgf_linear", "step": 1},
            match="'decay_rate'",
        ),
        ErrorCase(
            "step given to sr_ste",
            (W,),
            {"N": 2, "M": 4, "variant": "sr_ste", "step": 3},
            match="only the mdgf",
        ),
        ErrorCase(
            "exact_grad with sr_ste",
            (W,),
            {"N": 2, "M": 4, "variant": "sr_ste", "exact_grad": True},
            match="SR-STE",
        ),
        ErrorCase("N > M", (W,), {"N": 5, "M": 4, "variant": "step"}, match="at most M = 4"),
        ErrorCase(
            "row not divisible by M",
            (np.ones((2, 6)),),
            {"N": 2, "M": 4, "variant": "step"},
            match="divisible",
        ),
    ]


def _sr_ste_torch(torch, args, kwargs, cotangent):
    """SR-STE as the official SparseSRSTE: the stable-argsort mask, W·m forward, and the
    backward G + λ_W(1 − m)·W written by hand."""
    W = torch.from_numpy(args[0])  # noqa: N806
    g = torch.from_numpy(np.asarray(cotangent))
    N, M = kwargs["N"], kwargs["M"]  # noqa: N806
    decay = kwargs.get("lambda_w", 2e-4)

    def step():
        groups = W.abs().reshape(-1, M)
        order = torch.argsort(groups, dim=1, stable=True)
        mask = torch.ones_like(groups).scatter_(1, order[:, : M - N], 0.0).reshape(W.shape)
        w_sparse = W * mask
        _g_w = g + decay * (1 - mask) * W  # the backward Ḡ_W, timed (the test compares the forward)
        return w_sparse

    return step


register(
    OpCases(
        "nm_sparse_weight",
        dims={"R": (1, 4), "G": (1, 3)},
        random=_weight_random,
        edges=_weight_edges,
        errors=_weight_errors,
        notes=NOTES,
        defaults={"step": None, "decay_rate": None, "lambda_w": 2e-4, "exact_grad": False, "conv": False},
        stated_vjp=stated_sparse_weight_vjp,
        bench=Bench(
            make=_bench_weight,
            kwargs={"N": 2, "M": 4, "variant": "sr_ste"},
            torch=_sr_ste_torch,
            torch_label="SR-STE: stable argsort mask, W·m; backward G + λ(1 − m)W by hand",
        ),
    )
)


# -- sdgf_schedule ------------------------------------------------------------------------
def _schedule_random(rng, T):  # noqa: N803
    M = int(rng.choice([2, 4, 8, 16, 32]))  # noqa: N806
    N = M >> int(rng.integers(1, int(math.log2(M)) + 1))  # noqa: N806
    total = int(rng.integers(1, 60))
    dense = int(rng.integers(0, total + 1))
    fine = int(rng.integers(0, total - dense + 1))
    epochs = np.sort(rng.integers(0, total, size=T)) if rng.random() < 0.5 else np.arange(total)
    kwargs = {"N": N, "M": M, "total_epochs": total, "dense_epochs": dense, "fine_tune_epochs": fine}
    kwargs["official_boundary"] = bool(rng.random() < 0.4)
    return Sample("random", (epochs,), kwargs)


def _schedule_edges():
    return [
        Sample(
            "known value: 1:4 over 10 epochs",
            (np.arange(10),),
            {"N": 1, "M": 4, "total_epochs": 10, "dense_epochs": 1, "fine_tune_epochs": 3},
            comment="dense, 3:4 ×2, 2:4 ×2, 1:4; binary from epoch 7",
        ),
        Sample(
            "1:16, the official comment's five frames",
            (np.arange(30),),
            {"N": 1, "M": 16, "total_epochs": 30, "dense_epochs": 5, "fine_tune_epochs": 5},
        ),
        Sample(
            "frames shorter than an epoch",
            (np.arange(6),),
            {"N": 1, "M": 32, "total_epochs": 6, "dense_epochs": 1, "fine_tune_epochs": 1},
            comment="4 sparse epochs for 6 frames: the later frame wins where starts coincide",
        ),
        Sample(
            "no sparse epochs",
            (np.arange(4),),
            {"N": 2, "M": 4, "total_epochs": 4, "dense_epochs": 2, "fine_tune_epochs": 2},
        ),
        Sample(
            "official fine-tune boundary",
            (np.arange(10),),
            {
                "N": 1,
                "M": 4,
                "total_epochs": 10,
                "dense_epochs": 1,
                "fine_tune_epochs": 3,
                "official_boundary": True,
            },
        ),
        Sample(
            "1:2 (two frames of 1:2)",
            (np.array([0, 3, 5, 9]),),
            {"N": 1, "M": 2, "total_epochs": 10, "dense_epochs": 0, "fine_tune_epochs": 0},
        ),
    ]


def _schedule_errors():
    kwargs = {"total_epochs": 10, "dense_epochs": 1, "fine_tune_epochs": 2}
    return [
        ErrorCase(
            "M/N not a power of two", (np.arange(3),), {"N": 3, "M": 8, **kwargs}, match="power of two"
        ),
        ErrorCase("N = M", (np.arange(3),), {"N": 4, "M": 4, **kwargs}, match="power of two"),
        ErrorCase(
            "dense + fine-tune > total",
            (np.arange(3),),
            {"N": 1, "M": 4, "total_epochs": 4, "dense_epochs": 3, "fine_tune_epochs": 2},
            match="at least dense_epochs",
        ),
        ErrorCase(
            "epoch past the end", (np.array([10]),), {"N": 1, "M": 4, **kwargs}, match="below total_epochs"
        ),
    ]


register(
    OpCases(
        "sdgf_schedule",
        dims={"T": (1, 12)},
        random=_schedule_random,
        edges=_schedule_edges,
        errors=_schedule_errors,
        notes=NOTES,
        defaults={"official_boundary": False},
    )
)
