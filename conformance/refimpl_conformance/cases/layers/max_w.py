"""Conformance cases for `max_w_mixed_op`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "TIES": "equal maximal weights: the max's gradient is split evenly over them (PyTorch's torch.max)",
    "ONE_OP": "N = 1: w = 1, the weight is 1 and y = O",
    "LARGE_LOGITS": "α ~ ±1e3: softmax without the max shift overflows; the weakest ops get weight 0",
    "BATCH_DIMS": "leading dims (2, 3): one mixed op per leading index",
}


def _random(rng, B, N, D):  # noqa: N803
    outputs = rng.standard_normal((B, N, D)) * rng.uniform(0.1, 5)
    alpha = rng.standard_normal((B, N)) * float(rng.choice([1e-3, 0.5, 3.0]))  # 1e-3: the official init
    return Sample("random", (outputs, alpha))


def _edges():
    rng = np.random.default_rng(11)
    return [
        Sample(
            "equal logits: every op maximal",
            (rng.standard_normal((2, 4, 5)), np.zeros((2, 4))),
            flags=("TIES",),
            fd=False,
            comment="a kink of the max: the even split is one subgradient, finite differences see another",
        ),
        Sample(
            "three of four ops tie for the max",
            (rng.standard_normal((1, 4, 3)), np.array([[1.0, 1.0, 1.0, 0.0]])),
            flags=("TIES",),
            fd=False,
        ),
        Sample("one op", (rng.standard_normal((3, 1, 4)), rng.standard_normal((3, 1))), flags=("ONE_OP",)),
        Sample(
            "logits ±1e3",
            (rng.standard_normal((2, 3, 4)), np.array([[1e3, -1e3, 0.0], [-1e3, 998.0, 1e3]])),
            flags=("LARGE_LOGITS",),
        ),
        Sample(
            "batch dims (2, 3, N, D)",
            (rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 5))),
            flags=("BATCH_DIMS",),
        ),
        Sample("a single mixed op (N, D)", (rng.standard_normal((6, 7)), rng.standard_normal(6))),
    ]


def _known():
    return [
        Known(
            "w = (0.75, 0.25), O = (1, 2)",
            (np.array([[1.0], [2.0]]), np.log(np.array([3.0, 1.0]))),
            values={
                "y": [2.0],  # 1·1 + (1 − 0.75 + 0.25)·2
                "cotangent of 'outputs'": [[1.0], [0.5]],
                "cotangent of 'alpha'": [-0.75, 0.75],  # w̄ = (1 − 3, 2), ⟨w, w̄⟩ = −1
            },
            source="by hand (the catalog's VJP)",
            rtol=1e-12,
        ),
        Known(
            "tie: w = (½, ½), O = (1, 3)",
            (np.array([[1.0], [3.0]]), np.zeros(2)),
            values={
                "y": [4.0],
                "cotangent of 'outputs'": [[1.0], [1.0]],
                "cotangent of 'alpha'": [-0.5, 0.5],  # s = (1, 3): w̄ = s − ½·4 = (−1, 1)
            },
            source="by hand: the max's gradient split evenly over the tie",
            rtol=1e-12,
        ),
    ]


def _max_w_torch(torch, args, kwargs, cotangent):
    """The official MixedOp max_w weighting in PyTorch (amax splits ties evenly, as torch.max)."""
    outputs, alpha = (torch.from_numpy(a).requires_grad_() for a in args)
    g_y = torch.from_numpy(cotangent)

    def step():
        w = torch.softmax(alpha, dim=-1)
        max_w = w.amax(dim=-1, keepdim=True)
        y = ((1.0 - max_w + w).unsqueeze(-1) * outputs).sum(dim=-2)
        outputs.grad = alpha.grad = None
        y.backward(g_y)
        return y

    return step


register(
    OpCases(
        "max_w_mixed_op",
        dims={"B": (1, 5), "N": (1, 6), "D": (1, 8)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"B": "rows", "N": 8, "D": "cols"},
            torch=_max_w_torch,
            torch_label="softmax, amax, sum((1 − max w + w)·O) over the ops; autograd backward",
            transcendentals=lambda args, kwargs: args[1].size,  # one exp per logit
        ),
    )
)


# -- the official code's deviation (``refimpl deviations``) ------------------------------------------
@transcribes("sharpdarts-max-w-detached-in-multichannel", outputs=("y",))
def _official_multichannel_max_w(outputs, alpha, *, dtype):
    """``MultiChannelNetwork.forward`` of sharpDARTS's model_search.py: the same forward,
    ``Σ (1 − max_w + w_i) O_i`` (its max_w detached, which only the gradient shows)."""
    a = np.asarray(alpha, dtype=dtype)
    w = np.exp(a - a.max(axis=-1, keepdims=True))
    w = w / w.sum(axis=-1, keepdims=True)
    max_w = w.max(axis=-1, keepdims=True)
    return {"y": ((1.0 - max_w + w)[..., None] * np.asarray(outputs, dtype=dtype)).sum(axis=-2)}
