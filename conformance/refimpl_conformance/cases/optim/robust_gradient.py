"""Conformance cases for `median_of_means_gradient` and `winsorized_gradient`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "EVEN_GROUPS": "an even number of groups: the median is the mean of the two middle group means "
    "(torch.median's lower middle value is wrong here)",
    "ONE_GROUP": "one group: the plain mean",
    "UNEQUAL_GROUPS": "groups of different sizes: each group mean divides by its own size",
    "OUTLIER": "a planted outlier example: the robust aggregate barely moves",
    "LEVEL_ZERO": "c = 0: the plain mean (no clipping)",
    "MEDIAN_LEVEL": "2c + 1 = m: both bounds are the median, the result is the coordinate-wise median",
    "TIES": "repeated values at the clip bounds: order statistics, no tie rule needed",
}


def _assignment(rng, m, k):
    """Every group 0 … k−1 non-empty (a random partition, explicit)."""
    groups = np.concatenate([np.arange(k), rng.integers(0, k, size=m - k)])
    return rng.permutation(groups)


def _mom_random(rng, M, P):
    k = int(rng.integers(1, M + 1))
    grads = rng.standard_normal((M, P)) * float(rng.choice([1e-3, 1.0, 10.0]))
    return Sample("random", (grads, _assignment(rng, M, k)))


def _mom_edges():
    rng = np.random.default_rng(7)
    grads = rng.standard_normal((8, 5))
    outlier = grads.copy()
    outlier[3] = 1e6
    return [
        Sample("even number of groups", (grads, np.array([0, 1, 2, 3, 0, 1, 2, 3])), flags=("EVEN_GROUPS",)),
        Sample("one group", (grads, np.zeros(8, dtype=np.int64)), flags=("ONE_GROUP",)),
        Sample("singleton groups", (grads, np.arange(8)), flags=("EVEN_GROUPS",)),
        Sample("unequal groups", (grads, np.array([0, 0, 0, 0, 0, 1, 2, 2])), flags=("UNEQUAL_GROUPS",)),
        Sample(
            "planted outlier, three groups",
            (outlier, np.array([0, 1, 2, 0, 1, 2, 0, 1])),
            flags=("OUTLIER",),
            comment="the outlier's group mean is the largest, never the median",
        ),
        Sample("one example", (rng.standard_normal((1, 3)), np.array([0]))),
    ]


def _mom_errors():
    return [
        ErrorCase(
            "empty group",
            (np.ones((3, 2)), np.array([0, 2, 2])),
            match="group 1",
        )
    ]


def _mom_known():
    grads = np.array([[1.0, 0.0], [3.0, 2.0], [10.0, -4.0], [0.0, 6.0], [5.0, 5.0]])
    return [
        Known(
            "four groups (even)",
            (grads, np.array([0, 0, 1, 2, 3])),
            values={"grad": np.array([3.5, 3.0])},
            source="by hand: means (2, 1), (10, −4), (0, 6), (5, 5); middle pairs (2, 5) and (1, 5)",
        ),
        Known(
            "three groups",
            (grads[:4], np.array([0, 0, 1, 2])),
            values={"grad": np.array([2.0, 1.0])},
            source="by hand: means (2, 1), (10, −4), (0, 6)",
        ),
    ]


def _win_random(rng, M, P):
    grads = rng.standard_normal((M, P)) * float(rng.choice([1e-3, 1.0, 10.0]))
    return Sample("random", (grads,), {"level": int(rng.integers(0, (M - 1) // 2 + 1))})


def _win_edges():
    rng = np.random.default_rng(8)
    grads = rng.standard_normal((7, 4))
    outlier = grads.copy()
    outlier[2, :] = -1e5
    ties = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 0.0], [3.0, 2.0], [0.0, 2.0]])
    return [
        Sample("c = 0", (grads,), {"level": 0}, flags=("LEVEL_ZERO",)),
        Sample("2c + 1 = m", (grads,), {"level": 3}, flags=("MEDIAN_LEVEL",)),
        Sample("even m, 2c + 2 = m", (grads[:6],), {"level": 2}, comment="bounds: the two middle values"),
        Sample("planted outlier", (outlier,), {"level": 1}, flags=("OUTLIER",)),
        Sample("ties at the bounds", (ties,), {"level": 1}, flags=("TIES",)),
        Sample("one example", (rng.standard_normal((1, 3)),), {"level": 0}),
    ]


def _win_errors():
    return [ErrorCase("2c = m", (np.ones((4, 2)),), {"level": 2}, match="level")]


def _win_known():
    return [
        Known(
            "clip to the second smallest and largest",
            (np.array([[0.0, 5.0], [1.0, -1.0], [2.0, 0.0], [100.0, 1.0]]),),
            {"level": 1},
            {"grad": np.array([1.5, 0.5])},
            source="by hand: column 1 (0, 1, 2, 100) clipped to [1, 2] → (1 + 1 + 2 + 2)/4; "
            "column 2 (5, −1, 0, 1) clipped to [0, 1] → (1 + 0 + 0 + 1)/4",
        ),
        Known(
            "c = 0 is the mean",
            (np.array([[1.0], [2.0], [6.0]]),),
            {"level": 0},
            {"grad": np.array([3.0])},
            source="by hand",
        ),
    ]


def _mom_bench(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((rows, cols)), _assignment(rng, rows, 3)))


def _mom_torch(torch, args, kwargs, cotangent):
    grads, groups = torch.from_numpy(args[0]), torch.from_numpy(np.asarray(args[1]))
    k = int(groups.max()) + 1

    def step():
        with torch.no_grad():
            sums = torch.zeros((k, grads.shape[1]), dtype=grads.dtype).index_add_(0, groups, grads)
            counts = torch.bincount(groups, minlength=k).to(grads.dtype)[:, None]
            # quantile(0.5) with linear interpolation: the mean of the two middle values for even K
            return torch.quantile(sums / counts, 0.5, dim=0)

    return step


def _win_torch(torch, args, kwargs, cotangent):
    grads = torch.from_numpy(args[0])
    c, m = kwargs["level"], args[0].shape[0]

    def step():
        with torch.no_grad():
            ordered = torch.sort(grads, dim=0).values
            return torch.clamp(grads, ordered[c], ordered[m - 1 - c]).mean(dim=0)

    return step


register(
    OpCases(
        "median_of_means_gradient",
        dims={"M": (1, 7), "P": (1, 5)},
        random=_mom_random,
        edges=_mom_edges,
        errors=_mom_errors,
        notes=NOTES,
        known=_mom_known,
        defaults={},
        bench=Bench(
            make=_mom_bench,
            torch=_mom_torch,
            torch_label="index_add_ group sums / bincount; torch.quantile(0.5, dim=0) (3 groups, M3)",
        ),
    )
)

register(
    OpCases(
        "winsorized_gradient",
        dims={"M": (1, 7), "P": (1, 5)},
        random=_win_random,
        edges=_win_edges,
        errors=_win_errors,
        notes=NOTES,
        known=_win_known,
        defaults={},
        bench=Bench(
            make=lambda rng, rows, cols: Sample("bench", (rng.standard_normal((rows, cols)),), {"level": 2}),
            torch=_win_torch,
            torch_label="torch.sort(dim=0); clamp to the (c+1)-th smallest/largest; mean(dim=0)",
        ),
    )
)
