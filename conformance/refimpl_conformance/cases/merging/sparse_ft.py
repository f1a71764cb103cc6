"""Conformance cases for `sparse_ft_compose`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "ONE_SFT": "S = 1: θ₀ + φ",
    "DISJOINT": "SFTs with disjoint supports: the order of addition does not matter",
    "OVERLAP": "SFTs changing the same entries: the sum in the official order",
    "ZERO": "all-zero differences: θ₀ copied exactly",
    "SCALAR_PARAMETER": "a 0-d parameter tensor",
    "OFFSET": "θ₀ 1e4 + small differences: the sum of numbers of different size",
}


def _sparse(rng, shape, density):
    """A sparse difference: about `density` of the entries non-zero, at a varied scale."""
    values = rng.standard_normal(shape) * float(rng.choice([1e-3, 0.05, 1.0]))
    return np.where(rng.random(shape) < density, values, 0.0)


def _random(rng, R, C, S):  # noqa: N803
    shape = [(R * C,), (R, C), (R, 1, C)][int(rng.integers(0, 3))]
    theta0 = rng.standard_normal(shape) * float(rng.choice([0.05, 1.0, 10.0]))
    density = float(rng.choice([0.05, 0.3, 1.0]))
    phis = np.stack([_sparse(rng, shape, density) for _ in range(S)], axis=-1)
    return Sample("random", (theta0, phis))


def _edges():
    rng = np.random.default_rng(641)
    theta0 = rng.standard_normal((3, 4))
    disjoint = np.zeros((3, 4, 2))
    disjoint[0, :, 0] = 0.5
    disjoint[2, 1:, 1] = -0.25
    overlap = np.stack([_sparse(rng, (3, 4), 0.6) for _ in range(3)], axis=-1)
    return [
        Sample("S = 1", (theta0, _sparse(rng, (3, 4), 0.3)[..., None]), flags=("ONE_SFT",)),
        Sample("disjoint language and task SFTs", (theta0, disjoint), flags=("DISJOINT",)),
        Sample("three overlapping SFTs", (theta0, overlap), flags=("OVERLAP",)),
        Sample("zero differences", (theta0, np.zeros((3, 4, 2))), flags=("ZERO",)),
        Sample("0-d parameter, S = 2", (np.array(1.5), np.array([0.25, -1.0])), flags=("SCALAR_PARAMETER",)),
        Sample(
            "offset 1e4",
            (1e4 + rng.standard_normal(6), np.stack([_sparse(rng, (6,), 0.5) * 1e-3 for _ in range(2)], -1)),
            flags=("OFFSET",),
        ),
    ]


def _known():
    return [
        Known(
            "language + task SFT",
            (np.array([1.0, 2.0, 3.0]), np.array([[0.5, 0.0], [0.0, 0.0], [0.0, -1.0]])),
            values={"theta": [1.5, 2.0, 2.0]},
            source="by hand: θ₀ + φ_L + φ_T entry by entry",
        )
    ]


def _torch(torch, args, kwargs, cotangent):
    """θ₀ + φ_1 + … + φ_S in order, as SFT.apply's in-place adds: the same function."""
    theta0 = torch.from_numpy(args[0])
    phis = torch.from_numpy(args[1])

    def step():
        with torch.no_grad():
            theta = theta0.clone()
            for s in range(phis.shape[-1]):
                theta += phis[..., s]
            return theta

    return step


register(
    OpCases(
        "sparse_ft_compose",
        dims={"R": (1, 5), "C": (1, 6), "S": (1, 4)},
        random=_random,
        edges=_edges,
        errors=lambda: [],
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"R": "rows", "C": "cols", "S": 2},
            torch=_torch,
            torch_label="theta0.clone(); theta += phis[..., s] for each s (SFT.apply)",
        ),
    )
)
