"""Conformance cases for Dataset Quantization: `graphcut_bins`, `bin_uniform_sampling`,
`patch_drop_composite`.

All three are selections or constructions compared on outputs; the indices exactly. The
GraphCut gains are computed in a stated order (unit rows, pool sum, dot products over the
features in order), so exact ties — duplicated embeddings — are exact in every backend and go
to the lowest index.
"""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "TIES": "duplicated embeddings: equal gains, the lowest index is picked first",
    "LEFTOVER": "N not a multiple of k: N − k·(N // k) samples stay in no bin",
    "ONE_BIN": "k = 1: one GraphCut coreset of N samples (every sample, in greedy order)",
    "SCALE": "embeddings scaled by 1e-150 / 1e150: the cosine is scale-free (a norm squared in "
    "float64 under/overflows only beyond ~1e±154)",
    "NEGATIVE_LAMBDA": "λ < 0: the representation term is a penalty (the gain is still defined)",
    "ROUND_HALF_EVEN": "ratio·m = 2.5: Python's round gives 2 (half to even), as the official round()",
    "ALL_KEPT": "ratio = 1: every bin entry, in key order",
    "TIED_KEYS": "equal keys: the lower position first (stable sort)",
    "NO_DROP": "mask_ratio = 0: nothing dropped, the composite is x",
    "TIED_NOISE": "equal noise: the lower patch index is kept first",
}


# -- graphcut_bins ---------------------------------------------------------------------------------
def _graphcut_random(rng, N, D):
    f = rng.standard_normal((N, D)) * float(rng.choice([0.1, 1.0, 30.0]))
    if rng.random() < 0.3:
        f += 2.0  # a common direction: all similarities near 1
    kwargs = {"k": int(rng.integers(1, N + 1))}
    if rng.random() < 0.3:
        kwargs["lam"] = float(rng.choice([0.5, 2.0, 10.0]))
    return Sample("random", (f,), kwargs)


def _graphcut_edges():
    rng = np.random.default_rng(31)
    base = rng.standard_normal((4, 3))
    duplicated = np.vstack([base, base])  # row i and i + 4 equal
    return [
        Sample(
            "known value: 4 points, 2 bins",
            (np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]]),),
            {"k": 2},
            comment="bins [[1, 3], [0, 2]] (the doctest)",
        ),
        Sample("duplicated embeddings", (duplicated,), {"k": 2}, flags=("TIES",)),
        Sample("duplicated embeddings, one bin", (duplicated,), {"k": 1}, flags=("TIES", "ONE_BIN")),
        Sample("leftover samples", (rng.standard_normal((11, 4)),), {"k": 3}, flags=("LEFTOVER",)),
        Sample("k = N", (rng.standard_normal((5, 2)),), {"k": 5}),
        Sample(
            "tiny scale",
            (rng.standard_normal((6, 3)) * 1e-150,),
            {"k": 2},
            flags=("SCALE",),
            dtypes=("float64",),
        ),
        Sample(
            "huge scale",
            (rng.standard_normal((6, 3)) * 1e150,),
            {"k": 3},
            flags=("SCALE",),
            dtypes=("float64",),
        ),
        Sample(
            "negative λ", (rng.standard_normal((8, 3)),), {"k": 2, "lam": -1.0}, flags=("NEGATIVE_LAMBDA",)
        ),
        Sample("one feature (cosines ±1)", (np.array([[1.0], [-2.0], [3.0], [-0.5], [4.0]]),), {"k": 2}),
    ]


def _graphcut_errors():
    return [
        ErrorCase(
            "zero embedding", (np.array([[1.0, 0.0], [0.0, 0.0]]),), {"k": 1}, match=r"'f'.*row 1 with"
        ),
        ErrorCase("k above N", (np.ones((3, 2)),), {"k": 4}, match=r"'k'.*k <= N = 3"),
    ]


def _graphcut_torch(torch, args, kwargs, cotangent):
    """The same greedy in PyTorch: u = f/‖f‖, gains (λ|R|/2 − |S|) + (pool_u @ (λm/2 − t)),
    argmax per step (a selection: forward only)."""
    f = torch.from_numpy(args[0]).to(torch.float64)
    k, lam = kwargs.get("k", 10), kwargs.get("lam", 1.0)

    def step():
        with torch.no_grad():
            u = f / torch.linalg.vector_norm(f, dim=1, keepdim=True)
            count = u.shape[0]
            budget = count // k
            available = torch.ones(count, dtype=torch.bool)
            bins = torch.empty((k, budget), dtype=torch.int64)
            gains = torch.empty((k, budget), dtype=torch.float64)
            for b in range(k):
                pool = torch.nonzero(available).flatten()
                pool_u = u[pool]
                m = pool_u.sum(dim=0)
                t = torch.zeros_like(m)
                taken = torch.zeros(pool.shape[0], dtype=torch.bool)
                for s in range(budget):
                    gain = (0.5 * lam * pool.shape[0] - s) + pool_u @ (0.5 * lam * m - t)
                    gain[taken] = -torch.inf
                    x = int(torch.argmax(gain))
                    taken[x] = True
                    t += pool_u[x]
                    bins[b, s], gains[b, s] = pool[x], gain[x]
                available[bins[b]] = False
            return bins, gains.to(f.dtype)

    return step


register(
    OpCases(
        "graphcut_bins",
        dims={"N": (1, 14), "D": (1, 5)},
        random=_graphcut_random,
        edges=_graphcut_edges,
        errors=_graphcut_errors,
        defaults={"k": 10, "lam": 1.0},
        notes=NOTES,
        bench=Bench(
            sizes={"N": 2048, "D": 64},
            kwargs={"k": 10},
            torch=_graphcut_torch,
            torch_label="the same greedy, gains pool_u @ (λm/2 − t), torch.argmax per step; forward only",
        ),
    )
)


# -- bin_uniform_sampling ----------------------------------------------------------------------------
def _sampling_random(rng, k, m):
    bins = rng.permutation(k * m + int(rng.integers(0, 5)))[: k * m].reshape(k, m)
    keys = rng.random((k, m))
    if rng.random() < 0.3:
        keys = np.floor(keys * 3) / 3  # exact ties
    return Sample("random", (bins, keys), {"ratio": float(rng.choice([0.1, 0.3, 0.5, 1.0]))})


def _sampling_edges():
    bins = np.arange(10).reshape(2, 5)
    keys = np.array([[0.9, 0.1, 0.5, 0.3, 0.7], [0.0, 0.0, 0.5, 0.0, 0.25]])
    return [
        Sample(
            "known value: 2 of 5 per bin",
            (bins, keys),
            {"ratio": 0.4},
            flags=("TIED_KEYS",),
            comment="bin 0: keys 0.1, 0.3 → [1, 3]; bin 1: three zeros → [5, 6]",
        ),
        Sample("ratio·m = 2.5", (bins, keys), {"ratio": 0.5}, flags=("ROUND_HALF_EVEN",)),
        Sample("ratio = 1", (bins, keys), {"ratio": 1.0}, flags=("ALL_KEPT",)),
        Sample("ratio·m < 0.5: nothing drawn", (bins, keys), {"ratio": 0.05}),
    ]


def _sampling_errors():
    return [
        ErrorCase(
            "an index in two bins",
            (np.array([[0, 1], [1, 2]]), np.full((2, 2), 0.5)),
            match=r"'bins'.*disjoint",
        ),
        ErrorCase("a key of 1", (np.array([[0, 1]]), np.array([[0.5, 1.0]])), match=r"'keys'.*\[0, 1\)"),
    ]


register(
    OpCases(
        "bin_uniform_sampling",
        dims={"k": (1, 5), "m": (1, 12)},
        random=_sampling_random,
        edges=_sampling_edges,
        errors=_sampling_errors,
        defaults={"ratio": 0.1},
        notes=NOTES,
    )
)


# -- patch_drop_composite ---------------------------------------------------------------------------
def _composite_random(rng, B, C, h, w, p):
    if rng.random() < 0.5:  # the default patch size (16) on a small grid of patches
        p, h, w = 16, min(h, 2), min(w, 2)
    x = rng.standard_normal((B, C, h * p, w * p))
    reconstruction = rng.standard_normal((B, C, h * p, w * p))
    noise = rng.random((B, h * w))
    if rng.random() < 0.3:
        noise = np.floor(noise * 2) / 2
    return Sample(
        "random",
        (x, reconstruction, noise),
        {"mask_ratio": float(rng.choice([0.0, 0.2, 0.5, 0.75])), "patch_size": p},
    )


def _composite_edges():
    rng = np.random.default_rng(5)
    x, r = rng.standard_normal((2, 3, 4, 6)), rng.standard_normal((2, 3, 4, 6))
    return [
        Sample(
            "known value (the doctest)",
            (np.zeros((1, 1, 2, 4)), np.ones((1, 1, 2, 4)), np.array([[0.9, 0.1]])),
            {"mask_ratio": 0.5, "patch_size": 2},
        ),
        Sample(
            "nothing dropped",
            (x, r, rng.random((2, 6))),
            {"patch_size": 2, "mask_ratio": 0.0},
            flags=("NO_DROP",),
        ),
        Sample(
            "equal noise",
            (x, r, np.zeros((2, 6))),
            {"patch_size": 2, "mask_ratio": 0.5},
            flags=("TIED_NOISE",),
        ),
        Sample("one patch", (x[:, :, :2, :2], r[:, :, :2, :2], rng.random((2, 1))), {"patch_size": 2}),
    ]


def _composite_errors():
    x = np.zeros((1, 1, 4, 4))
    return [
        ErrorCase(
            "patch not dividing", (x, x, np.zeros((1, 4))), {"patch_size": 3}, match=r"'patch_size'.*divisor"
        ),
        ErrorCase("noise length", (x, x, np.zeros((1, 3))), {"patch_size": 2}, match=r"'noise'.*L = "),
    ]


register(
    OpCases(
        "patch_drop_composite",
        dims={"B": (1, 3), "C": (1, 3), "h": (1, 3), "w": (1, 3), "p": (1, 3)},
        random=_composite_random,
        edges=_composite_edges,
        errors=_composite_errors,
        defaults={"mask_ratio": 0.2, "patch_size": 16},
        notes=NOTES,
    )
)
