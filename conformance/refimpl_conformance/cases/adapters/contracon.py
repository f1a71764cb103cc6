"""Conformance cases for `contracon_conv_weight` and `entropy_task_inference`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "DELTA_KERNEL": "K = centred delta: W ⋆ K = W exactly (a flipped or off-by-one padding moves it)",
    "SHIFT_KERNEL": "an off-centre delta: the block shifts by one with a zero column entering (zero padding, "
    "cross-correlation: a flipped kernel shifts the other way)",
    "K_EXCEEDS_BLOCK": "k larger than the head block in both axes: most taps fall in the padding",
    "K_ONE": "k = 1: the block is scaled by its scalar kernel (no padding)",
    "HEAD_BOUNDARY": "H > 1: padding is per head block, taps never read the neighbouring head's rows",
    "OFFICIAL": "official=True: conv bias and sigmoid skip gate (c̄ = ΣG, s̄ = σ'(s)⟨G, W⟩)",
    "SATURATED_GATE": "s = ±30: σ(s) is 1 or ~1e-13, σ'(s) tiny but exact "
    "(no 1 − σ cancellation to 0 for s < 0)",
    "PLAIN_IGNORES_C_S": "official=False: c and s do not enter (their cotangents are exactly 0)",
}


def _conv_inputs(rng, H, P, I, R):  # noqa: N803 - dimension names as in the op's specs
    k = 2 * R + 1
    W = rng.standard_normal((H * P, I))
    K = rng.standard_normal((H, k, k)) / k
    c = rng.standard_normal(H)
    s = rng.standard_normal(H)
    return W, K, c, s


def _conv_random(rng, H, P, I, R):  # noqa: N803
    W, K, c, s = _conv_inputs(rng, H, P, I, R)
    return Sample("random", (W, K, c, s), {"official": bool(rng.random() < 0.5)})


def _conv_edges():
    rng = np.random.default_rng(74)
    W = rng.standard_normal((4, 5))
    delta = np.zeros((1, 3, 3))
    delta[0, 1, 1] = 1.0
    right = np.zeros((1, 3, 3))
    right[0, 1, 2] = 1.0
    zeros = np.zeros(1)
    W_heads, K_heads, c_heads, s_heads = _conv_inputs(rng, 4, 2, 6, 1)
    return [
        Sample("centred delta kernel", (W, delta, zeros, zeros), flags=("DELTA_KERNEL",), comment="W_t = W"),
        Sample("right-neighbour kernel", (W, right, zeros, zeros), flags=("SHIFT_KERNEL",)),
        Sample(
            "k = 7 on a 2 × 3 block",
            (rng.standard_normal((2, 3)), rng.standard_normal((1, 7, 7)), zeros, zeros),
            flags=("K_EXCEEDS_BLOCK",),
        ),
        Sample("k = 1", (W, np.array([[[2.5]]]), zeros, zeros), flags=("K_ONE",)),
        Sample(
            "H = 4 heads (CCT), official",
            (W_heads, K_heads, c_heads, s_heads),
            {"official": True},
            flags=("HEAD_BOUNDARY", "OFFICIAL"),
        ),
        Sample(
            "H = 4 heads, plain",
            (W_heads, K_heads, c_heads, s_heads),
            flags=("HEAD_BOUNDARY", "PLAIN_IGNORES_C_S"),
        ),
        Sample(
            "gates saturated (s = ±30)",
            (
                rng.standard_normal((2, 4)),
                rng.standard_normal((2, 3, 3)),
                np.array([0.1, -0.2]),
                np.array([30.0, -30.0]),
            ),
            {"official": True},
            flags=("SATURATED_GATE", "OFFICIAL"),
        ),
        Sample(
            "one row, one column",
            (np.array([[1.5]]), rng.standard_normal((1, 3, 3)), zeros + 0.3, zeros),
            {"official": True},
        ),
    ]


def _conv_errors():
    W = np.ones((4, 5))
    return [
        ErrorCase("even k", (W, np.ones((1, 2, 2)), np.zeros(1), np.zeros(1)), match=r"'K'.*odd"),
        ErrorCase(
            "rows not divisible by H",
            (W, np.ones((3, 3, 3)), np.zeros(3), np.zeros(3)),
            match=r"'W'.*divisible",
        ),
    ]


def _conv_known():
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    ones = np.ones((1, 3, 3))
    return [
        # every output sums the in-block part of its 3×3 neighbourhood: all four cells see the whole 2×2 block
        Known(
            "3×3 box filter on a 2×2 block",
            (W, ones, np.zeros(1), np.zeros(1)),
            {},
            {"W_t": np.full((2, 2), 10.0)},
        ),
        # official, c = 1, s = 0 (gate ½): 10 + 1 + W/2
        Known(
            "box filter, official (c = 1, s = 0)",
            (W, ones, np.ones(1), np.zeros(1)),
            {"official": True},
            {"W_t": np.array([[11.5, 12.0], [12.5, 13.0]])},
        ),
    ]


def _conv_torch(torch, args, kwargs, cotangent):
    """Grouped torch.nn.functional.conv2d (one group per head, padding (k − 1)/2, bias c when official)
    plus sigmoid(s)·W; autograd for the backward."""
    W, K, c, s = (torch.from_numpy(a).requires_grad_() for a in args)
    official = kwargs.get("official", False)
    heads, k = K.shape[0], K.shape[1]
    g = torch.from_numpy(cotangent)

    def step():
        blocks = W.reshape(1, heads, W.shape[0] // heads, W.shape[1])
        out = torch.nn.functional.conv2d(
            blocks, K.unsqueeze(1), bias=c if official else None, padding=(k - 1) // 2, groups=heads
        )
        if official:
            out = out + torch.sigmoid(s).reshape(1, heads, 1, 1) * blocks
        out = out.reshape(W.shape)
        W.grad = K.grad = c.grad = s.grad = None
        out.backward(g)
        return out

    return step


register(
    OpCases(
        "contracon_conv_weight",
        dims={"H": (1, 3), "P": (1, 5), "I": (1, 7), "R": (0, 2)},
        random=_conv_random,
        edges=_conv_edges,
        errors=_conv_errors,
        notes=NOTES,
        known=_conv_known,
        defaults={"official": False},
        bench=Bench(
            # a (1024, 1024) projection in 4 heads, k = 15 (the official --ker_sz default)
            sizes={"H": 4, "P": 256, "I": 1024, "R": 7},
            kwargs={"official": True},
            torch=_conv_torch,
            torch_label="grouped torch.nn.functional.conv2d (one group per head) + sigmoid(s)·W, autograd",
            transcendentals=lambda args, kwargs: args[3].size,
        ),
    )
)


# -- entropy_task_inference ---------------------------------------------------------------
ENTROPY_NOTES = {
    "TIE": "two tasks with identical logits: the lower task index wins (first minimum)",
    "ALL_TIED": "every task identical: task 0",
    "MEAN_OF_LOGITS_DIFFERS": "confident views that disagree: low mean entropy, "
    "high entropy of the mean logits (official=True and False pick different tasks)",
    "SATURATED": "logits ±1e4: p = 0 exactly for some classes; −Σ p log p must not give nan (0·log 0)",
    "ONE_TASK": "T = 1: task 0 for every sample",
    "ONE_CLASS": "C = 1: every entropy is 0 (official: −log(1 + 1e-4)), tie → task 0",
}


def _entropy_random(rng, T, M, N, C):  # noqa: N803
    scale = float(rng.choice([0.5, 3.0, 20.0]))
    logits = scale * rng.standard_normal((T, M, N, C))
    return Sample("random", (logits,), {"official": bool(rng.random() < 0.5)})


def _entropy_edges():
    rng = np.random.default_rng(16)
    base = rng.standard_normal((1, 3, 2, 4))
    # task 0 flatter (entropy of softmax(βz) decreases with β), tasks 1 and 2 bit-identical: task 1 wins
    tied = np.concatenate([0.5 * base, 3.0 * base, 3.0 * base], axis=0)
    disagree = np.array([[[[10.0, 0.0]], [[0.0, 10.0]]], [[[1.0, 0.0]], [[1.0, 0.0]]]])
    saturated = np.array([[[[1e4, -1e4, 0.0]]], [[[0.0, 0.0, 0.0]]]])
    return [
        Sample("three tied tasks", (tied,), flags=("TIE",), comment="task 1 for both samples"),
        Sample("three tied tasks, official", (tied,), {"official": True}, flags=("TIE",)),
        Sample("all tasks identical", (np.zeros((4, 2, 3, 5)),), flags=("ALL_TIED",)),
        Sample(
            "confident disagreeing views", (disagree,), flags=("MEAN_OF_LOGITS_DIFFERS",), comment="task 0"
        ),
        Sample(
            "confident disagreeing views, official",
            (disagree,),
            {"official": True},
            flags=("MEAN_OF_LOGITS_DIFFERS",),
            comment="task 1",
        ),
        Sample("saturated logits", (saturated,), flags=("SATURATED",)),
        Sample("saturated logits, official", (saturated,), {"official": True}, flags=("SATURATED",)),
        Sample("one task", (rng.standard_normal((1, 4, 3, 5)),), flags=("ONE_TASK",)),
        Sample("one class", (rng.standard_normal((3, 2, 2, 1)),), {"official": True}, flags=("ONE_CLASS",)),
    ]


def _entropy_known():
    uniform_vs_sharp = np.zeros((2, 1, 1, 2))
    uniform_vs_sharp[1, 0, 0] = [5.0, 0.0]
    p = 1 / (1 + np.exp(-5.0))
    sharp = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    return [
        Known(
            "uniform task 0 vs sharp task 1",
            (uniform_vs_sharp,),
            {},
            {"task": np.array([1]), "entropy": np.array([[np.log(2.0), sharp]])},
        ),
        Known(
            "uniform C = 4 under official (+1e-4 in the log)",
            (np.zeros((1, 2, 1, 4)),),
            {"official": True},
            {"task": np.array([0]), "entropy": np.array([[-np.log(0.25 + 1e-4)]])},
        ),
    ]


register(
    OpCases(
        "entropy_task_inference",
        dims={"T": (1, 4), "M": (1, 4), "N": (1, 4), "C": (1, 6)},
        random=_entropy_random,
        edges=_entropy_edges,
        notes=ENTROPY_NOTES,
        known=_entropy_known,
        defaults={"official": False},
    )
)
