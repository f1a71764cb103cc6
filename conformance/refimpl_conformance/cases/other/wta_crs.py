"""Conformance cases for `wta_crs_probabilities`, `wta_crs_deterministic_size` and `wta_crs_matmul`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "ZERO_NORM": "a column of X (or row of Z) of norm 0: p_i = ε/(S + ε) > 0, never exactly 0",
    "ALL_ZERO": "X = 0: every product is 0 and p_i = ε/ε = 1 (the official code switches to ‖Z_{i,:}‖)",
    "EXACT": "k = n: the product is computed exactly (|C| = k = n)",
    "NO_SPLIT": "the best score exceeds 1/k: no deterministic term (plain column-row sampling)",
    "K_ONE": "k = 1: only c = k, never chosen, so |C| = 0",
    "DRAWN_TWICE": "an index drawn twice: its term counts twice (weights summed)",
    "NO_SAMPLES": "s = 0: the deterministic part alone",
    "LONGTAIL": "P_C > 1 − 1e-3: official_longtail drops the sampled part, the paper keeps it",
    "FIRST_ITERATION": "official_first_iteration: the sampled terms weighted by (1 − P_C) alone",
    "HEAVY_TAIL": "p from a heavy-tailed draw: weights (1 − P_C)/(s·p_i) up to ~10²",
}


def _probabilities(rng, n):
    """Heavy-tailed positive probabilities summing to 1, none below 1e-3 before normalizing."""
    raw = np.maximum(rng.pareto(1.5, size=n), 1e-3)
    return raw / raw.sum()


# -- wta_crs_probabilities -----------------------------------------------------------------------
def _probabilities_random(rng, M, n, N):  # noqa: N803
    x = rng.standard_normal((M, n)) * rng.pareto(2.0, size=n)
    z = rng.standard_normal((n, N)) * rng.pareto(2.0, size=(n, 1))
    return Sample("random", (x, z), {"eps": float(rng.choice([1e-8, 1e-6, 1e-3]))})


def _probabilities_edges():
    rng = np.random.default_rng(203)
    x = rng.standard_normal((3, 5))
    z = rng.standard_normal((5, 2))
    x_zero_column = x.copy()
    x_zero_column[:, 2] = 0.0
    return [
        Sample(
            "known value: a = (5, 1), b = (1, 5)",
            (np.array([[3.0, 0.0], [4.0, 1.0]]), np.array([[1.0], [5.0]])),
            comment="p = (5 + ε)/(10 + ε) each",
        ),
        Sample("a zero column of X", (x_zero_column, z), flags=("ZERO_NORM",)),
        Sample("X = 0", (np.zeros((3, 5)), z), flags=("ALL_ZERO",)),
        Sample("large norms", (x * 1e18, z * 1e18), comment="‖·‖² beyond float32: computed scaled"),
    ]


register(
    OpCases(
        "wta_crs_probabilities",
        dims={"M": (1, 5), "n": (1, 8), "N": (1, 5)},
        random=_probabilities_random,
        edges=_probabilities_edges,
        notes=NOTES,
        defaults={"eps": 1e-8},
    )
)


# -- wta_crs_deterministic_size --------------------------------------------------------------------
def _size_random(rng, n):
    kwargs = {
        "ratio": float(rng.choice([0.1, 0.3, 0.5, 1.0, rng.uniform(0.05, 1.0)])),
        "minimal_k": int(rng.choice([1, 2, 3, 10])),
    }
    return Sample("random", (_probabilities(rng, n),), kwargs)


def _size_edges():
    return [
        Sample(
            "known value: p = (0.5, 0.3, 0.1, 0.05, 0.05), k = 3",
            (np.array([0.5, 0.3, 0.1, 0.05, 0.05]),),
            {"ratio": 0.6, "minimal_k": 1},
            comment="s_1 = 0.25, s_2 = 0.2 ≤ 1/3: |C| = 2",
        ),
        Sample("k = n", (np.array([0.4, 0.3, 0.2, 0.1]),), {"ratio": 1.0}, flags=("EXACT",)),
        Sample(
            "uniform p: no split",
            (np.full(20, 0.05),),
            {"ratio": 0.25, "minimal_k": 1},
            flags=("NO_SPLIT",),
            comment="s_c = (1 − c/20)/(5 − c) > 1/5 for every c < 5",
        ),
        Sample("k = 1", (np.array([0.7, 0.2, 0.1]),), {"ratio": 0.2, "minimal_k": 1}, flags=("K_ONE",)),
        Sample(
            "top-k mass 1 exactly",
            (np.array([0.5, 0.5, 0.0, 0.0]),),
            {"ratio": 0.5, "minimal_k": 1},
            comment="s_2 = 0/0 is never chosen: |C| = 1",
        ),
    ]


register(
    OpCases(
        "wta_crs_deterministic_size",
        dims={"n": (1, 40)},
        random=_size_random,
        edges=_size_edges,
        notes=NOTES,
        defaults={"minimal_k": 10},
    )
)


# -- wta_crs_matmul -------------------------------------------------------------------------------
def _draw(rng, p, count, s):
    """s indices drawn with replacement from q_i ∝ p_i over i outside the |C| largest p."""
    kept = np.argsort(-p, kind="stable")[:count]
    rest = np.setdiff1d(np.arange(p.shape[0]), kept)
    if rest.size == 0 or s == 0:
        return np.zeros(0, dtype=np.int64)
    q = p[rest] / p[rest].sum()
    return rng.choice(rest, size=s, replace=True, p=q).astype(np.int64)


def _matmul_random(rng, M, n, N):  # noqa: N803
    x = rng.standard_normal((M, n)) * float(rng.choice([0.1, 1.0, 10.0]))
    z = rng.standard_normal((n, N))
    p = _probabilities(rng, n)
    count = int(rng.integers(0, n + 1))
    s = int(rng.integers(0, 5)) if count < n else 0
    kwargs = {
        "num_deterministic": count,
        "official_longtail": bool(rng.integers(0, 4) == 0),
        "official_first_iteration": bool(rng.integers(0, 4) == 0),
    }
    return Sample("random", (x, z, p, _draw(rng, p, count, s)), kwargs)


def _matmul_edges():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6))
    z = rng.standard_normal((6, 2))
    p = np.array([0.3, 0.05, 0.25, 0.1, 0.2, 0.1])
    heavy_p = _probabilities(rng, 64)
    heavy_x = rng.standard_normal((4, 64))
    heavy_z = rng.standard_normal((64, 3))
    longtail_p = np.array([0.5, 0.4996, 0.0002, 0.0001, 0.0001])
    return [
        Sample(
            "known value: C = {0}, index 2 drawn once",
            (np.array([[1.0, 2.0, 3.0]]), np.ones((3, 1)), np.array([0.5, 0.25, 0.25]), np.array([2])),
            {"num_deterministic": 1},
            comment="1 + (0.5/0.25)·3 = 7",
        ),
        Sample(
            "|C| = n: the exact product",
            (x, z, p, np.zeros(0, dtype=np.int64)),
            {"num_deterministic": 6},
            flags=("EXACT", "NO_SAMPLES"),
        ),
        Sample(
            "|C| = 0: plain column-row sampling",
            (x, z, p, np.array([0, 2, 4, 4])),
            {"num_deterministic": 0},
            flags=("DRAWN_TWICE",),
        ),
        Sample(
            "index drawn twice",
            (x, z, p, np.array([3, 1, 3])),
            {"num_deterministic": 2},
            flags=("DRAWN_TWICE",),
        ),
        Sample(
            "s = 0", (x, z, p, np.zeros(0, dtype=np.int64)), {"num_deterministic": 2}, flags=("NO_SAMPLES",)
        ),
        Sample(
            "P_C > 1 − 1e-3, official long tail",
            (x[:, :5], z[:5], longtail_p, np.array([2, 4])),
            {"num_deterministic": 2, "official_longtail": True},
            flags=("LONGTAIL",),
        ),
        Sample(
            "P_C > 1 − 1e-3, paper",
            (x[:, :5], z[:5], longtail_p, np.array([2, 4])),
            {"num_deterministic": 2},
            flags=("LONGTAIL",),
            comment="weights (1 − P_C)/(2·p_i) = 0.0003/0.0004 and 0.0003/0.0002",
        ),
        Sample(
            "official first iteration",
            (x, z, p, np.array([1, 3, 5])),
            {"num_deterministic": 3, "official_first_iteration": True},
            flags=("FIRST_ITERATION",),
        ),
        Sample(
            "heavy-tailed p, n = 64, k = 20",
            (heavy_x, heavy_z, heavy_p, _draw(rng, heavy_p, 8, 12)),
            {"num_deterministic": 8},
            flags=("HEAVY_TAIL",),
        ),
    ]


def _matmul_errors():
    x, z = np.ones((2, 3)), np.ones((3, 2))
    p = np.array([0.5, 0.3, 0.2])
    return [
        ErrorCase(
            "a drawn index inside C",
            (x, z, p, np.array([2, 0])),
            {"num_deterministic": 1},
            match="index 0 .* is in C",
        ),
        ErrorCase(
            "|C| > n",
            (x, z, p, np.zeros(0, dtype=np.int64)),
            {"num_deterministic": 4},
            match="at most n = 3",
        ),
        ErrorCase(
            "negative probability",
            (x, z, np.array([0.7, 0.5, -0.2]), np.zeros(0, dtype=np.int64)),
            {"num_deterministic": 1},
            match="p ≥ 0",
        ),
        ErrorCase(
            "a drawn index with p = 0",
            (x, z, np.array([0.6, 0.4, 0.0]), np.array([2])),
            {"num_deterministic": 1},
            match="has p = 0",
        ),
    ]


def _matmul_bench(rng, rows, cols):
    """X (rows, n = cols), Z (n, 256): k = 0.3n terms, split as wta_crs_deterministic_size does."""
    n, width = cols, 256
    x = rng.standard_normal((rows, n))
    z = rng.standard_normal((n, width)) * rng.pareto(1.5, size=(n, 1))
    norms = np.linalg.norm(x, axis=0) * np.linalg.norm(z, axis=1)
    p = (norms + 1e-8) / (norms.sum() + 1e-8)
    k = max(int(0.3 * n), 1)
    top = np.cumsum(np.sort(p)[::-1][: k - 1])
    score = (1 - top) / (k - np.arange(1, k)) if k > 1 else np.array([np.inf])
    count = int(np.argmin(score)) + 1 if score.min() <= 1 / k else 0
    sampled = _draw(rng, p, count, k - count)
    return Sample("bench", (x, z, p, sampled), {"num_deterministic": count})


def _term_weights(args, kwargs):
    """α (n,) at the bench's defaults: 1 on C, (1 − P_C)·count/(s·p_i) on the drawn indices."""
    _, _, p_np, sampled_np = args
    count = kwargs["num_deterministic"]
    kept = np.argsort(-p_np.astype(np.float64), kind="stable")[:count]
    alpha = np.zeros(p_np.shape[0])
    alpha[kept] = 1.0
    if sampled_np.size:
        residual = 1.0 - p_np.astype(np.float64)[kept].sum()
        np.add.at(alpha, sampled_np, residual / (sampled_np.size * p_np.astype(np.float64)[sampled_np]))
    return alpha


def _matmul_blas(args, kwargs):
    """The three products over the kept terms S (|S| ≤ k): Ŷ = X_S Z_S (forward),
    X̄_S = Ȳ Z_Sᵀ and Z̄_S = X_Sᵀ Ȳ (backward)."""
    support = np.flatnonzero(_term_weights(args, kwargs))
    x_s, z_s = args[0][:, support], args[1][support]
    g_y = np.ones((x_s.shape[0], z_s.shape[1]), dtype=x_s.dtype)

    def step():
        return x_s @ z_s, g_y @ z_s.T, x_s.T @ g_y

    return step


def _matmul_torch(torch, args, kwargs, cotangent):
    """The same estimator in PyTorch: Ŷ = (X[:, S]·α_S) Z[S, :], autograd for X̄ and Z̄."""
    x_np, z_np = args[:2]
    alpha = _term_weights(args, kwargs)
    support = torch.from_numpy(np.flatnonzero(alpha))
    weights = torch.from_numpy(alpha[np.flatnonzero(alpha)].astype(x_np.dtype))
    x = torch.from_numpy(x_np).requires_grad_()
    z = torch.from_numpy(z_np).requires_grad_()
    g_y = torch.from_numpy(cotangent)

    def step():
        x.grad = z.grad = None
        y = (x[:, support] * weights) @ z[support]
        y.backward(g_y)
        return y

    return step


register(
    OpCases(
        "wta_crs_matmul",
        dims={"M": (1, 4), "n": (2, 10), "N": (1, 4)},
        random=_matmul_random,
        edges=_matmul_edges,
        errors=_matmul_errors,
        notes=NOTES,
        defaults={"official_longtail": False, "official_first_iteration": False},
        bench=Bench(
            make=_matmul_bench,
            torch=_matmul_torch,
            torch_label="(X[:, S]·α_S) @ Z[S, :] with autograd (the same gathered estimator)",
            blas=_matmul_blas,
        ),
    )
)
