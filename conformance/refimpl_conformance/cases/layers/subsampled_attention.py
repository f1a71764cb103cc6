"""Conformance cases for stochastically subsampled attention (`subsampled_attention`)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "DENSE": "an all-true mask: full softmax attention (SSA's inference mode)",
    "ONE_KEY": "|S_i| = 1: A_ij = 1 on the kept key, o_i = v_j, and no gradient reaches q_i or k",
    "MASKED_LARGE": "a dropped key with the largest score must not enter the row max or the sum",
    "LARGE_SCORES": "scores ~ 1e3: exp overflows without subtracting the row max over the kept keys",
    "LOCAL": "a locality-biased subset (band |i − j| ≤ 1 plus one far key), like the paper's local sampling",
    "CROSS": "N ≠ M: queries and keys of different lengths",
}


def _qkv(rng, B, H, N, M, Dk, Dv, scale=1.0):  # noqa: N803 - dimension names as in the op's specs
    return (
        rng.standard_normal((B, H, N, Dk)) * scale,
        rng.standard_normal((B, H, M, Dk)) * scale,
        rng.standard_normal((B, H, M, Dv)),
    )


def _mask(rng, B, H, N, M, keep):  # noqa: N803
    """Each key kept with probability ``keep``, then one random key per row forced in."""
    mask = rng.random((B, H, N, M)) < keep
    forced = rng.integers(0, M, size=(B, H, N))
    np.put_along_axis(mask, forced[..., None], True, axis=-1)
    return mask


def _random(rng, B, H, N, M, Dk, Dv):  # noqa: N803
    q, k, v = _qkv(rng, B, H, N, M, Dk, Dv)
    return Sample("random", (q, k, v, _mask(rng, B, H, N, M, float(rng.uniform(0.1, 0.9)))))


def _edges():
    rng = np.random.default_rng(11)
    q, k, v = _qkv(rng, 2, 2, 5, 5, 3, 2)
    one_key = np.zeros((2, 2, 5, 5), dtype=bool)
    np.put_along_axis(one_key, rng.integers(0, 5, size=(2, 2, 5, 1)), True, axis=-1)
    k_large = k.copy()
    k_large[..., 0, :] = 30 * q[..., 0:1, :].mean(axis=-2)  # key 0 scores high for most queries
    drop_first = np.ones((2, 2, 5, 5), dtype=bool)
    drop_first[..., 0] = False
    band = np.abs(np.arange(6)[:, None] - np.arange(6)[None, :]) <= 1
    local = np.broadcast_to(band, (1, 2, 6, 6)).copy()
    local[0, :, 0, 5] = True
    return [
        Sample(
            "all-true mask (dense attention)", (q, k, v, np.ones((2, 2, 5, 5), dtype=bool)), flags=("DENSE",)
        ),
        Sample("one key per row", (q, k, v, one_key), flags=("ONE_KEY",)),
        Sample("dropped key 0 has the largest score", (q, k_large, v, drop_first), flags=("MASKED_LARGE",)),
        Sample(
            "scores ~ 1e3",
            (*_qkv(rng, 1, 2, 4, 4, 2, 2, scale=25.0), _mask(rng, 1, 2, 4, 4, 0.5)),
            flags=("LARGE_SCORES",),
            fd=False,
            comment="the softmax is saturated: finite differences of a step function",
        ),
        Sample("band |i − j| ≤ 1", (*_qkv(rng, 1, 2, 6, 6, 2, 3), local), flags=("LOCAL",)),
        Sample(
            "N = 2 queries, M = 7 keys",
            (*_qkv(rng, 1, 1, 2, 7, 3, 2), _mask(rng, 1, 1, 2, 7, 0.4)),
            flags=("CROSS",),
        ),
    ]


def _errors():
    q, k, v = _qkv(np.random.default_rng(0), 1, 2, 3, 3, 2, 2)
    mask = np.ones((1, 2, 3, 3), dtype=bool)
    mask[0, 1, 2] = False
    return [ErrorCase("a query row with no key", (q, k, v, mask), match=r"row S\[0, 1, 2\] is all False")]


def _known():
    # q = 2, k = 0 (d_k = 1): equal scores; S = {0, 2}: A = [1/2, 0, 1/2], o = (1 + 6)/2.
    # G = 1: v̄ = Aᵀ G = A; Ā = v = [1, 2, 6], Σ A Ā = 3.5, s̄ = A (Ā − 3.5) = [−1.25, 0, 1.25];
    # q̄ = s̄ K = 0, k̄ = s̄ᵀ q = [−2.5, 0, 2.5]
    q = np.full((1, 1, 1, 1), 2.0)
    k = np.zeros((1, 1, 3, 1))
    v = np.array([1.0, 2.0, 6.0]).reshape(1, 1, 3, 1)
    S = np.array([True, False, True]).reshape(1, 1, 1, 3)
    return [
        Known(
            "by hand: equal scores, keys {0, 2}",
            (q, k, v, S),
            values={
                "o": [[[[3.5]]]],
                "cotangent of 'v'": [[[[0.5], [0.0], [0.5]]]],
                "cotangent of 'q'": [[[[0.0]]]],
                "cotangent of 'k'": [[[[-2.5], [0.0], [2.5]]]],
            },
            source="computed by hand",
            rtol=1e-15,
        )
    ]


def _torch(torch, args, kwargs, cotangent):
    """Dense attention with the subset as an additive −∞ mask: softmax(masked_fill(QKᵀ/√d)) V."""
    q, k, v = (torch.from_numpy(a).requires_grad_() for a in args[:3])
    keep = torch.from_numpy(args[3])
    g = torch.from_numpy(cotangent)
    scale = 1 / np.sqrt(q.shape[-1])

    def step():
        scores = (q @ k.transpose(-1, -2) * scale).masked_fill(~keep, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        q.grad = k.grad = v.grad = None
        out.backward(g)
        return out

    return step


def _blas(args, kwargs):
    """Q Kᵀ and A V forward; Aᵀ Ō, Ō Vᵀ, S̄ K and S̄ᵀ Q backward (the softmax is elementwise)."""
    q, k, v = args[:3]
    A = np.ones(args[3].shape, dtype=q.dtype)
    g = np.ones((*q.shape[:-1], v.shape[-1]), dtype=q.dtype)

    def step():
        scores = q @ np.swapaxes(k, -1, -2)
        g_A = g @ np.swapaxes(v, -1, -2)
        return scores, A @ v, np.swapaxes(A, -1, -2) @ g, g_A @ k, np.swapaxes(g_A, -1, -2) @ q

    return step


def _bench(rng, rows, cols):
    """B = 4, H = 8, N = M = 512, d = 64, about a quarter of the keys kept (the paper's 4x
    subsampling); the shape flags are ignored (N × M scores)."""
    return Sample("bench", (*_qkv(rng, 4, 8, 512, 512, 64, 64), _mask(rng, 4, 8, 512, 512, 0.25)))


register(
    OpCases(
        "subsampled_attention",
        dims={"B": (1, 2), "H": (1, 2), "N": (1, 6), "M": (1, 6), "Dk": (1, 4), "Dv": (1, 4)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench,
            torch=_torch,
            torch_label="torch: softmax(masked_fill(Q Kᵀ/√d, ~S, −inf)) V, autograd backward",
            # one exp per score (the reference and torch evaluate every entry of the N × M matrix)
            transcendentals=lambda args, kwargs: int(np.prod(args[3].shape)),
            blas=_blas,
        ),
    )
)
