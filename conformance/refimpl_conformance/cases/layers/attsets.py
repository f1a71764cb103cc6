"""Conformance cases for AttSets' attentional set aggregation (`attsets_pooling`)."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ONE_ELEMENT": "N = 1 (or one present element): S = 1, o = x, C̄ = 0 and W̄ = 0",
    "MASKED_LARGE": "a masked element with the largest score must stay out of the max and the sum",
    "RAGGED": "sets of different sizes through the mask: masked elements get weight exactly 0 and X̄ = 0",
    "LARGE_SCORES": "scores ~ 1e3: exp overflows without subtracting the per-feature max over the set",
    "BIAS": "|b| ≫ |X W|: b is constant over the set axis; adding it to the scores first swamps X W; b̄ = 0",
}


def _params(rng, D, scale=1.0):  # noqa: N803 - dimension names as in the specs
    return rng.standard_normal((D, D)) * scale / math.sqrt(D), rng.standard_normal(D) * 0.3


def _random(rng, B, N, D):  # noqa: N803
    X = rng.standard_normal((B, N, D)) * rng.uniform(0.3, 3)
    W, b = _params(rng, D, rng.uniform(0.5, 2))
    if rng.uniform() < 0.5:
        return Sample("random", (X, W, b))
    mask = rng.uniform(size=(B, N)) < 0.7
    mask[np.arange(B), rng.integers(0, N, size=B)] = True  # every set keeps an element
    return Sample("random, masked", (X, W, b, mask))


def _edges():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 5, 4))
    W, b = _params(rng, 4)
    ragged = np.ones((3, 5), dtype=bool)
    ragged[0, 1:] = False  # a set of one
    ragged[1, 3:] = False
    large_masked = X.copy()
    large_masked[:, 4] = 10.0  # the last element's scores dominate every feature, but it is masked
    last_out = np.ones((3, 5), dtype=bool)
    last_out[:, 4] = False
    return [
        Sample("N = 1", (rng.standard_normal((2, 1, 4)), W, b), flags=("ONE_ELEMENT",)),
        Sample("ragged sets", (X, W, b, ragged), flags=("RAGGED", "ONE_ELEMENT")),
        Sample(
            "masked element with the largest score",
            (large_masked, 3 * np.eye(4), b, last_out),
            flags=("MASKED_LARGE",),
        ),
        Sample(
            "scores ~ 1e3",
            (X * 10, W * 100, b),
            flags=("LARGE_SCORES",),
            fd=False,
            comment="the softmax is saturated: finite differences of a step function",
        ),
        Sample("bias 1e8", (X, W, b * 1e8), flags=("BIAS",)),
    ]


def _errors():
    X = np.ones((2, 3, 2))
    W, b = np.eye(2), np.zeros(2)
    mask = np.array([[True, False, True], [False, False, False]])
    return [ErrorCase("an empty set", (X, W, b, mask), match="at least one element")]


def _known():
    # X = [[1, 0], [5, log 3]], W = [[0, 0], [1, 0]]: scores of feature 0 are X_n1 = [0, log 3] →
    # S_·0 = [1/4, 3/4], o_0 = 1/4 + 15/4 = 4; feature 1 scores 0 → S_·1 = [1/2, 1/2],
    # o_1 = log 3 / 2. ō = [1, 0]: C̄_·0 = S ō (X − o) = [1/4 (1 − 4), 3/4 (5 − 4)] = [−3/4, 3/4],
    # C̄_·1 = 0. X̄ = ō ⊙ S + C̄ Wᵀ: C̄ Wᵀ row n = [0, C̄_n0] → X̄ = [[1/4, −3/4], [3/4, 3/4]].
    # W̄ = Xᵀ C̄: W̄_00 = 1 (−3/4) + 5 (3/4) = 3, W̄_10 = log 3 · 3/4, W̄_·1 = 0; b̄ = 0.
    log3 = math.log(3.0)
    return [
        Known(
            "by hand: weights 1/4, 3/4",
            (np.array([[[1.0, 0.0], [5.0, log3]]]), np.array([[0.0, 0.0], [1.0, 0.0]]), np.zeros(2)),
            values={
                "o": [[4.0, log3 / 2]],
                "cotangent of 'X'": [[[0.25, -0.75], [0.75, 0.75]]],
                "cotangent of 'W'": [[3.0, 0.0], [0.75 * log3, 0.0]],
                "cotangent of 'b'": [0.0, 0.0],
            },
            cotangent=np.array([[1.0, 0.0]]),
            source="computed by hand",
            rtol=1e-14,
            atol=1e-15,
        )
    ]


def _torch(torch, args, kwargs, cotangent):
    """The official ``attsets_fc`` (out_ele_num = 1, option 1): ``C = X W + b``, softmax over the
    set axis (masked elements filled with −inf), ``Σ_n X ⊙ S``; autograd backward."""
    X, W, b = (torch.from_numpy(a).requires_grad_() for a in args[:3])
    mask = args[3] if len(args) > 3 else kwargs.get("mask")
    blocked = None if mask is None else torch.from_numpy(~mask)[:, :, None]
    g = torch.from_numpy(cotangent)

    def step():
        scores = X @ W + b
        if blocked is not None:
            scores = scores.masked_fill(blocked, float("-inf"))
        out = (X * torch.softmax(scores, dim=1)).sum(dim=1)
        for t in (X, W, b):
            t.grad = None
        out.backward(g)
        return out

    return step


def _blas(args, kwargs):
    """``X W`` forward; ``C̄ Wᵀ`` and ``Xᵀ C̄`` backward."""
    X, W = args[0], args[1]
    rows = X.reshape(-1, X.shape[-1])

    def step():
        return [rows @ W, rows @ W.T, rows.T @ rows]

    return step


def _bench(rng, rows, cols):
    """B = rows // 16 sets of N = 24 views (the official ``total_mv``), D = cols // 4 features."""
    B, D = max(1, rows // 16), max(1, cols // 4)  # noqa: N806
    X = rng.standard_normal((B, 24, D))
    W, b = _params(rng, D)
    return Sample("bench", (X, W, b))


register(
    OpCases(
        "attsets_pooling",
        dims={"B": (1, 4), "N": (1, 6), "D": (1, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"mask": None},
        bench=Bench(
            make=_bench,
            torch=_torch,
            torch_label="official attsets_fc in torch: softmax over the set axis of X W + b, "
            "Σ_n X ⊙ S, autograd backward",
            transcendentals=lambda args, kwargs: args[0].size,  # one exp per score
            blas=_blas,
        ),
    )
)
