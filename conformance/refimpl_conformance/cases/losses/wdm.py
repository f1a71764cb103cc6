"""Conformance cases for `wdm_kr_estimate`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "DIAGONAL_DOMINANT": "diagonal ±1e6, trace 0, off-diagonal O(1): ΣF − tr F cancels, a masked sum not",
    "SEPARABLE": "f(x, y) = g(x) + h(y) carries no dependence: Î = 0 exactly in real arithmetic",
    "SHIFT": "a constant added to every score leaves Î unchanged",
    "TWO_PAIRS": "N = 2: one negative per row, the smallest valid batch",
}


def _random(rng, N):  # noqa: N803
    scale = float(rng.choice([0.1, 1.0, 50.0]))
    F = rng.standard_normal((N, N)) * scale  # noqa: N806
    if rng.integers(0, 2):  # a critic that finds the positives: larger diagonal
        F = F + np.eye(N) * 2 * scale  # noqa: N806
    return Sample("random", (F,))


def _edges():
    rng = np.random.default_rng(21)
    g, h = rng.standard_normal(5), rng.standard_normal(5)
    noise = rng.standard_normal((5, 5))
    return [
        Sample(
            "known value, N = 2",
            (np.array([[3.0, 1.0], [0.0, 1.0]]),),
            flags=("TWO_PAIRS",),
            comment="2 − 0.5",
        ),
        Sample("separable critic g(x_i) + h(y_j)", (g[:, None] + h[None, :],), flags=("SEPARABLE",)),
        Sample(
            "diagonal ±1e6, trace 0",
            (noise + np.diag([1e6, -1e6, 1e6, -1e6, 0.0]),),
            flags=("DIAGONAL_DOMINANT",),
            comment="Î = O(1): ΣF − tr F would lose the off-diagonal digits to the ±1e6 terms",
        ),
        Sample("shifted by 1e3", (noise + 1e3,), flags=("SHIFT",), dtypes=("float64",)),
    ]


def _errors():
    return [ErrorCase("N = 1", (np.ones((1, 1)),), match="N >= 2")]


def _known():
    return [
        Known(
            "N = 2",
            (np.array([[3.0, 1.0], [0.0, 1.0]]),),
            values={"estimate": 1.5, "cotangent of 'F'": [[0.5, -0.5], [-0.5, 0.5]]},
            source="by hand: (3 + 1)/2 − (1 + 0)/2; 1/N on the diagonal, −1/(N(N − 1)) off it",
            rtol=1e-15,
        ),
        Known(
            "N = 3, F_ij = i − j + 3δ_ij",
            (np.subtract.outer(np.arange(3.0), np.arange(3.0)) + 3 * np.eye(3),),
            values={
                "estimate": 3.0,  # diagonal mean 3, off-diagonal entries ±1, ±2 sum to 0
                "cotangent of 'F'": np.where(np.eye(3, dtype=bool), 1 / 3, -1 / 6).tolist(),
            },
            source="by hand",
            rtol=1e-15,
        ),
    ]


def _wdm_torch(torch, args, kwargs, cotangent):
    """diagonal mean minus the masked off-diagonal mean; autograd backward."""
    scores = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    n = args[0].shape[0]
    off_diagonal = ~torch.eye(n, dtype=torch.bool)

    def step():
        scores.grad = None
        estimate = scores.diagonal().mean() - scores[off_diagonal].sum() / (n * (n - 1))
        estimate.backward(g)
        return estimate

    return step


def _bench_sample(rng, rows, cols):
    n = max(rows // 2, 2)
    return Sample("bench", (rng.standard_normal((n, n)) + 3 * np.eye(n),))


register(
    OpCases(
        "wdm_kr_estimate",
        dims={"N": (2, 9)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench_sample,
            torch=_wdm_torch,
            torch_label="F.diagonal().mean() − F[~eye].sum()/(N(N − 1)); autograd backward",
        ),
    )
)
