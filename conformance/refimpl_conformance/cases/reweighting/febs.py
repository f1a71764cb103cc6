"""Conformance cases for `soft_dice_loss` and `febs_dice_loss` (FairSeg's fair error-bound scaling).

`febs_dice_loss` declares a custom VJP (its group weights are constants of the step): its
backward is checked against the stated formula below, evaluated independently.
"""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

SOFT_DICE_NOTES = {
    "EQUAL": "s = t: D = 0 exactly and the gradient 0; the official 1 − (2I + ε)/S rounds to ±1e-16",
    "NEAR_EQUAL": "s = t + 1e-6: D ~ 1e-12; 1 − (2I + ε)/S cancels to one or two digits, "
    "Σ(s − t)²/S does not",
    "EMPTY": "s = t = 0: D = 0/ε = 0 (the smoothing makes two empty masks a perfect overlap)",
    "NO_TARGET": "t = 0: κ = ε/S ≪ 1 must be summed directly, not formed as 1 − D",
    "LARGE": "scores ~1e3: S ~ 1e6·N; relative precision only",
}

FEBS_NOTES = {
    "SINGLE_GROUP": "one group in the batch: its ratio is 1, w = tanh(1) ≈ 0.7616 for every sample",
    "ABSENT_OFFICIAL": "a group absent with official_absent_group: min = 0, every weight tanh(0) = 0, the "
    "loss the constant (1/C) Σ_c Σt²/(Σt² + ε) and the gradient 0",
    "ABSENT": "a group absent (default): the minimum over the groups present, unaffected",
    "GAMMA_ZERO": "γ = 0: every ratio^0 = 1, w = tanh(1) everywhere (the febs_loss class default)",
    "EQUAL_GROUPS": "two groups with identical samples: equal D_g, both ratios exactly 1",
    "NEAR_PERFECT": "one group with p = t + 1e-7: D_g ~ 1e-14 must keep its digits (Σ(p − t)²/S), "
    "the other groups' ratios are ~1e-13 and their weights ~1e-13 (γ = 1)",
    "NO_TARGET_CLASS": "a class with no target pixel in the batch: κ_c = ε/S_c",
}


# -- soft_dice_loss ----------------------------------------------------------------------------------
def _scores_and_targets(rng, shape):
    """Probability-like scores (or real scores at a drawn scale) and a binary or soft target."""
    kind = str(rng.choice(["probabilities", "real", "soft"]))
    if kind == "real":
        s = rng.standard_normal(shape) * float(rng.choice([0.1, 1.0, 10.0]))
    else:
        s = rng.uniform(0.0, 1.0, size=shape)
    if kind == "soft":
        t = rng.uniform(0.0, 1.0, size=shape)
    else:
        t = (rng.uniform(size=shape) < float(rng.choice([0.1, 0.5]))).astype(np.float64)
    return s, t


def _soft_dice_random(rng, B, N):
    layout = str(rng.choice(["flat", "batch", "volume"]))
    shape = {"flat": (N,), "batch": (B, N), "volume": (2, B, N)}[layout]
    s, t = _scores_and_targets(rng, shape)
    return Sample("random", (s, t), {"eps": float(rng.choice([1e-5, 1e-5, 1e-2, 1.0]))})


def _soft_dice_edges():
    rng = np.random.default_rng(81)
    s = rng.uniform(0, 1, size=(3, 7))
    t = (rng.uniform(size=(3, 7)) < 0.4).astype(np.float64)
    return [
        Sample("s = t", (t.copy(), t), {}, flags=("EQUAL",), comment="D = 0, gradient 0"),
        Sample("s = t (soft)", (s.copy(), s), {"eps": 1.0}, flags=("EQUAL",)),
        Sample(
            "s = t + 1e-6",
            (t + 1e-6 * rng.standard_normal(t.shape), t),
            {},
            flags=("NEAR_EQUAL",),
            dtypes=("float64",),
            fd_step=1e-9,
            comment="float32 cannot hold t + 1e-6 next to 1; the FD step is below the perturbation",
        ),
        Sample("s = t = 0", (np.zeros((2, 5)), np.zeros((2, 5))), {}, flags=("EMPTY",)),
        Sample("no target pixel", (s, np.zeros_like(s)), {}, flags=("NO_TARGET",)),
        Sample("scores ~1e3", (1e3 * s, t), {"eps": 1.0}, flags=("LARGE",)),
        Sample("one entry", (np.array([0.3]), np.array([1.0])), {"eps": 0.5}),
    ]


def _soft_dice_known():
    # S = 1 + 2 + 1 = 4, Q = 1, κ = (2·1 + 1)/4 = 3/4; ∂D/∂s = (2/S)(κ s − t) = ½([3/4, 0] − [1, 1])
    return [
        Known(
            "s = [1, 0], t = [1, 1], ε = 1",
            (np.array([1.0, 0.0]), np.array([1.0, 1.0])),
            {"eps": 1.0},
            values={"loss": 0.25, "cotangent of 's'": [-0.125, -0.5]},
            source="by hand: D = Q/S = 1/4",
            rtol=1e-15,
        ),
        Known(
            "official smoothing: s = [0.5, 0.5], t = [1, 0]",
            (np.array([0.5, 0.5]), np.array([1.0, 0.0])),
            values={"loss": 0.5 / (1.5 + 1e-5)},
            source="by hand: 1 − (2·0.5 + ε)/(0.5 + 1 + ε) = 0.5/(1.5 + ε)",
            rtol=1e-15,
        ),
    ]


def _soft_dice_torch(torch, args, kwargs, cotangent):
    """The official ``_dice_loss``: 1 − (2Σst + ε)/(Σs² + Σt² + ε); autograd backward."""
    s = torch.from_numpy(args[0]).requires_grad_()
    t = torch.from_numpy(args[1])
    g = torch.from_numpy(cotangent)
    eps = kwargs.get("eps", 1e-5)

    def step():
        s.grad = None
        loss = 1 - (2 * torch.sum(s * t) + eps) / (torch.sum(s * s) + torch.sum(t * t) + eps)
        loss.backward(g)
        return loss

    return step


def _soft_dice_bench(rng, rows, cols):
    """Probabilities and a binary mask (rows, cols): one class channel of a batch, flattened."""
    t = (rng.uniform(size=(rows, cols)) < 0.3).astype(np.float64)
    return Sample("bench", (rng.uniform(0.0, 1.0, size=(rows, cols)), t))


register(
    OpCases(
        "soft_dice_loss",
        dims={"B": (1, 4), "N": (1, 9)},
        random=_soft_dice_random,
        edges=_soft_dice_edges,
        known=_soft_dice_known,
        defaults={"eps": 1e-5},
        notes=SOFT_DICE_NOTES,
        bench=Bench(
            make=_soft_dice_bench,
            torch=_soft_dice_torch,
            torch_label="1 − (2Σst + ε)/(Σs² + Σt² + ε) (the official _dice_loss); autograd backward",
        ),
    )
)


# -- febs_dice_loss ----------------------------------------------------------------------------------
def _probabilities(rng, B, C, H, W):
    """Softmax over the class axis of logits at a drawn scale (C = 1: probabilities in (0, 1),
    a single-class softmax would be exactly the one-hot target)."""
    if C == 1:
        return rng.uniform(0.05, 0.95, size=(B, 1, H, W))
    logits = rng.standard_normal((B, C, H, W)) * float(rng.choice([0.5, 2.0, 6.0]))
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _one_hot(labels, C):
    return np.ascontiguousarray(np.moveaxis(np.eye(C)[labels], -1, 1))


def _febs_random(rng, B, C, H, W):
    p = _probabilities(rng, B, C, H, W)
    t = _one_hot(rng.integers(0, C, size=(B, H, W)), C)
    num_groups = int(rng.integers(1, 4))
    groups = rng.integers(0, num_groups, size=B)
    kwargs = {
        "num_groups": num_groups,
        "gamma": float(rng.choice([0.0, 0.5, 1.0, 1.0, 2.0])),
        "eps": float(rng.choice([1e-5, 1e-5, 1e-2])),
        "official_absent_group": bool(rng.choice([False, False, True])),
    }
    return Sample("random", (p, t, groups), kwargs)


def _febs_edges():
    rng = np.random.default_rng(2311)
    B, C, H, W = 4, 3, 3, 4
    p = _probabilities(rng, B, C, H, W)
    t = _one_hot(rng.integers(0, C, size=(B, H, W)), C)
    near = p.copy()  # group 1 (samples 2, 3) within 1e-7 of its targets
    near[2:] = t[2:] + 1e-7 * rng.standard_normal(t[2:].shape)
    no_target = p.copy()
    labels = rng.integers(0, 2, size=(B, H, W))  # class 2 never a target
    return [
        Sample(
            "single group", (p, t, np.zeros(B, dtype=np.int64)), {"num_groups": 1}, flags=("SINGLE_GROUP",)
        ),
        Sample(
            "absent group, official",
            (p, t, np.array([0, 1, 1, 0])),
            {"num_groups": 3, "official_absent_group": True},
            flags=("ABSENT_OFFICIAL",),
            comment="group 2 absent: weights 0, the constant loss, gradient 0",
        ),
        Sample(
            "absent group, official, γ = 0",
            (p, t, np.array([0, 1, 1, 0])),
            {"num_groups": 3, "gamma": 0.0, "official_absent_group": True},
            flags=("ABSENT_OFFICIAL", "GAMMA_ZERO"),
            comment="0^0 = 1: the official weights are tanh(1) despite the zero minimum",
        ),
        Sample(
            "absent group",
            (p, t, np.array([0, 1, 1, 0])),
            {"num_groups": 3, "gamma": 2.0},
            flags=("ABSENT",),
        ),
        Sample(
            "γ = 0", (p, t, np.array([0, 1, 2, 0])), {"num_groups": 3, "gamma": 0.0}, flags=("GAMMA_ZERO",)
        ),
        Sample(
            "two groups with equal samples",
            (np.concatenate([p[:2], p[:2]]), np.concatenate([t[:2], t[:2]]), np.array([0, 0, 1, 1])),
            {"num_groups": 2},
            flags=("EQUAL_GROUPS",),
        ),
        Sample(
            "one group nearly perfect",
            (near, t, np.array([0, 0, 1, 1])),
            {"num_groups": 2},
            flags=("NEAR_PERFECT",),
            dtypes=("float64",),
            comment="float32 rounds t + 1e-7 to t next to 1: the group would be exactly perfect",
        ),
        Sample(
            "a class without target pixels",
            (no_target, _one_hot(labels, C), np.array([1, 0, 1, 1])),
            {"num_groups": 2, "eps": 1e-5},
            flags=("NO_TARGET_CLASS",),
        ),
        Sample(
            "one sample, one pixel",
            (np.array([0.3]).reshape(1, 1, 1, 1), np.ones((1, 1, 1, 1)), np.array([0])),
            {"num_groups": 1},
            flags=("SINGLE_GROUP",),
        ),
    ]


def _febs_errors():
    p = np.full((2, 2, 1, 2), 0.5)
    t = _one_hot(np.array([[[0, 1]], [[1, 1]]]), 2)
    perfect = p.copy()
    perfect[1] = t[1]
    return [
        ErrorCase(
            "p = t on all of group 1",
            (perfect, t, np.array([0, 1])),
            {"num_groups": 2},
            match="p equal to t on every sample of group 1",
        ),
        ErrorCase(
            "p = t on all of group 0, with the official flag",
            (np.concatenate([t[1:], p[:1]]), np.concatenate([t[1:], t[:1]]), np.array([0, 1])),
            {"num_groups": 3, "official_absent_group": True},
            match="p equal to t on every sample of group 0",
        ),
        ErrorCase(
            "group label ≥ num_groups",
            (p, t, np.array([0, 2])),
            {"num_groups": 2},
            match=r"group labels in \[0, num_groups\)",
        ),
    ]


def _febs_known():
    # p = [0, 2], t = [1, 1], ε = 1: D_0 = 1/2, D_1 = 1/6; ratios [1/3, 1]; s̃ = [0, 2 tanh 1]
    w0, w1 = math.tanh(1 / 3), math.tanh(1.0)
    scaled = 2 * w1
    total = scaled**2 + 2 + 1  # S
    kappa = (2 * scaled + 1) / total  # (2I + ε)/S
    return [
        Known(
            "p = [0, 2], t = [1, 1], groups [0, 1], ε = 1",
            (np.array([0.0, 2.0]).reshape(2, 1, 1, 1), np.ones((2, 1, 1, 1)), np.array([0, 1])),
            {"num_groups": 2, "eps": 1.0},
            values={
                "loss": (1 + (scaled - 1) ** 2) / total,
                "cotangent of 'p'": np.array(
                    [w0 * (2 / total) * (kappa * 0.0 - 1), w1 * (2 / total) * (kappa * scaled - 1)]
                ).reshape(2, 1, 1, 1),
            },
            source="by hand: w = [tanh(1/3), tanh 1], L = Q/S, p̄_b = w_b (2/S)(κ w_b p_b − t_b)",
            rtol=1e-14,
        ),
        Known(
            "absent group, official: the constant loss",
            (
                np.array([0.25, 0.5]).reshape(1, 2, 1, 1),
                np.array([0.0, 1.0]).reshape(1, 2, 1, 1),
                np.array([0]),
            ),
            {"num_groups": 2, "official_absent_group": True},
            values={"loss": (0.0 + 1 / (1 + 1e-5)) / 2, "cotangent of 'p'": np.zeros((1, 2, 1, 1))},
            source="by hand: w = tanh(0) = 0; class 0: 0/ε, class 1: Σt²/(Σt² + ε)",
            rtol=1e-15,
        ),
    ]


def febs_stated_vjp(args, kwargs, cotangents):
    """The soft-Dice VJP at p̃ = w p times w, with w constant, in the official form
    ``∂D/∂s = −[2tS − (2I + ε)·2s]/S²`` per class, averaged over the classes (float64)."""
    p, t, groups = (np.asarray(a) for a in args)
    p, t = p.astype(np.float64), t.astype(np.float64)
    num_groups = kwargs["num_groups"]
    gamma = kwargs.get("gamma", 1.0)
    eps = kwargs.get("eps", 1e-5)
    official = kwargs.get("official_absent_group", False)
    (g_loss,) = cotangents
    C = p.shape[1]
    group_loss = {}
    for g in sorted(set(groups.tolist())):
        members = groups == g
        group_loss[g] = sum(
            float(np.sum((p[members, c] - t[members, c]) ** 2))
            / (float(np.sum(p[members, c] ** 2)) + float(np.sum(t[members, c] ** 2)) + eps)
            for c in range(C)
        )
    smallest = 0.0 if official and len(group_loss) < num_groups else min(group_loss.values())
    weight = {g: math.tanh((1.0 if d == smallest else smallest / d) ** gamma) for g, d in group_loss.items()}
    w = np.array([weight[g] for g in groups.tolist()])[:, None, None]
    g_p = np.zeros_like(p)
    for c in range(C):
        s = w * p[:, c]
        intersection = float(np.sum(s * t[:, c]))
        total = float(np.sum(s * s)) + float(np.sum(t[:, c] ** 2)) + eps
        g_s = -(2 * t[:, c] * total - (2 * intersection + eps) * 2 * s) / total**2
        g_p[:, c] = float(g_loss) / C * w * g_s
    return [g_p]


def _febs_torch(torch, args, kwargs, cotangent):
    """The official febs_loss.forward on probabilities: per-group Dice without grad, tanh((min/D_g)^γ),
    then 1 − (2Σp̃t + ε)/(Σp̃² + Σt² + ε) per class, mean; autograd backward."""
    p = torch.from_numpy(args[0]).requires_grad_()
    t = torch.from_numpy(args[1])
    groups = torch.from_numpy(args[2]).long()
    g = torch.from_numpy(cotangent)
    gamma = kwargs.get("gamma", 1.0)
    eps = kwargs.get("eps", 1e-5)
    present = torch.unique(groups)

    def dice(s, target):  # per class: sums over the batch and the pixels
        return 1 - (2 * (s * target).sum((0, 2, 3)) + eps) / (
            (s * s).sum((0, 2, 3)) + (target * target).sum((0, 2, 3)) + eps
        )

    def step():
        p.grad = None
        with torch.no_grad():
            group_loss = torch.stack([dice(p[groups == k], t[groups == k]).sum() for k in present])
            ratio = group_loss.min() / group_loss
            weight_of = torch.zeros(int(groups.max()) + 1, dtype=p.dtype)
            weight_of[present] = torch.tanh(ratio**gamma)
        loss = dice(p * weight_of[groups][:, None, None, None], t).mean()
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "febs_dice_loss",
        dims={"B": (1, 5), "C": (1, 3), "H": (1, 4), "W": (1, 4)},
        random=_febs_random,
        edges=_febs_edges,
        errors=_febs_errors,
        known=_febs_known,
        defaults={"gamma": 1.0, "eps": 1e-5, "official_absent_group": False},
        notes=FEBS_NOTES,
        stated_vjp=febs_stated_vjp,
        bench=Bench(
            # the official training batch is 24 × 3 classes × 224²; here 4 × 3 × ROWS × COLS
            sizes={"B": 4, "C": 3, "H": "rows", "W": "cols"},
            torch=_febs_torch,
            torch_label="official febs_loss.forward on probabilities: group Dice under no_grad, "
            "tanh((min/D_g)^γ), Dice of the scaled predictions per class, mean; autograd backward",
            # per group present: one power and one tanh
            transcendentals=lambda args, kwargs: 2 * len(np.unique(args[2])),
        ),
    )
)
