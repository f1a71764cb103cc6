"""Conformance cases for OFQ: `statsq_quantize`, `cga_boundary_mask`, `qkr_quantize`.

The two quantizers are straight-through estimators (custom VJPs): their backwards are
checked against the stated formulas below, never against differences of the rounded forward.
"""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

STATSQ_NOTES = {
    "TIES": "n·w̃ − 0.5 exactly half-integral: rint rounds to even (a zero weight goes to +s/(2n)); "
    "C's round() (half away from zero) gives the other level",
    "CLIP_LOW": "b = 1 and W ≤ −s: rint(−1.5) = −2, the level −1.5·s off the grid (official), or −0.5·s "
    "with clamp_levels",
    "CLIP_HIGH": "W ≥ s: w̃ = 1 − 1e-6 keeps the top level n − 1; a port clipping at 1 rounds to n",
    "PER_HEAD": "3-D weight: one scale per row index, the mean over the last axis then over the heads",
    "WIDE": "b = 16: 2^16 levels, n·w̃ − 0.5 still exact in float32",
}

CGA_NOTES = {
    "BOUNDARY": "β placed at i + ½ ± 0.004 (near) and ± 0.006 (not near) with δ = 0.005",
    "RANGE": "a boundary next to a level no weight rounds to lies outside [min rint β, max rint β): "
    "not marked, even at distance 0",
    "ONE_BIT": "b = 1: rint(−1.5) = −2 widens the range to the boundary −1.5",
}

QKR_NOTES = {
    "PER_HEAD": "per_head_scale: the official (H·D, D) reshape, one scale per row of every head",
    "ONE_HEAD": "H = 1: the shared and the per-head scales coincide",
    "RANK_ONE": "d = 1: every head's W_qk has rank one",
}


# -- stated backwards (independent evaluations, float64) -------------------------------------------
def statsq_stated_vjp(args, kwargs, cotangents):
    """The STE: ∂L/∂W = ∂L/∂Q, the identity (clipped region included; s detached)."""
    (g_w_q,) = cotangents
    return [np.asarray(g_w_q, dtype=np.float64)]


def qkr_stated_vjp(args, kwargs, cotangents):
    """The STE to W_qk, then the product: ∂L/∂W_q[h,r,a] = Σ_b G[h,a,b] W_k[h,r,b],
    ∂L/∂W_k[h,r,b] = Σ_a G[h,a,b] W_q[h,r,a] (einsum, entry by entry)."""
    W_q, W_k = (np.asarray(a, dtype=np.float64) for a in args[:2])
    (G,) = (np.asarray(c, dtype=np.float64) for c in cotangents)
    return [np.einsum("hab,hrb->hra", G, W_k), np.einsum("hab,hra->hrb", G, W_q)]


# -- statsq_quantize ---------------------------------------------------------------------------------
def _weight(rng, shape):
    """Gaussian weights at a drawn scale, with a few exact zeros (the β = −0.5 tie) and a
    few heavy entries (|W| > s: the clipped region)."""
    W = rng.standard_normal(shape) * float(rng.choice([0.02, 1.0, 30.0]))
    flat = W.reshape(-1)
    picks = rng.permutation(flat.size)
    flat[picks[: flat.size // 8]] = 0.0
    flat[picks[flat.size // 8 : flat.size // 8 + 1]] *= 6.0
    if np.any(np.abs(W).max(axis=-1) == 0):  # keep every scale positive
        W[..., 0] = np.where(np.abs(W).max(axis=-1) == 0, 1.0, W[..., 0])
    return W


def _statsq_random(rng, H, R, C):
    shape = (R, C) if rng.random() < 0.5 else (H, R, C)
    kwargs = {
        "bits": int(rng.choice([1, 2, 3, 4, 8])),
        "clamp_levels": bool(rng.choice([False, True])),
    }
    return Sample("random", (_weight(rng, shape),), kwargs)


TIES_ROW = np.array([[0.0, 1.0, -1.0, 2.0]])  # s = 2: w̃ = [0, ½, −½, 1 − 1e-6]
ONE_BIT_ROW = np.array([[-4.0, 1.0, 1.0], [4.0, -1.0, -1.0]])  # s = 4: w̃ = −1 and 1 − 1e-6


def _statsq_edges():
    rng = np.random.default_rng(82)
    ties = np.array([[0.0, 0.25, -0.25, 0.5, -0.5, 0.75, -0.75, 1.0]])  # s = 1: w̃ = k/4
    ties = np.concatenate([ties, 2 * ties])  # and s = 2
    return [
        Sample("ties, b = 2: w̃ ∈ {0, ±½}", (TIES_ROW,), {"bits": 2}, flags=("TIES",)),
        Sample("ties, b = 3: w̃ = k/4", (ties,), {"bits": 3}, flags=("TIES",)),
        Sample("b = 1, w̃ = −1 (off the grid)", (ONE_BIT_ROW,), {"bits": 1}, flags=("CLIP_LOW", "CLIP_HIGH")),
        Sample(
            "b = 1, w̃ = −1, clamp_levels",
            (ONE_BIT_ROW,),
            {"bits": 1, "clamp_levels": True},
            flags=("CLIP_LOW",),
        ),
        Sample("w̃ = 1, b = 2 (top level kept)", (ONE_BIT_ROW,), {"bits": 2}, flags=("CLIP_HIGH",)),
        Sample("3-D per head, b = 2", (rng.standard_normal((3, 4, 5)),), {"bits": 2}, flags=("PER_HEAD",)),
        Sample(
            "3-D, one head all zero",
            (np.concatenate([np.zeros((1, 3, 4)), rng.standard_normal((2, 3, 4))]),),
            {"bits": 3},
            flags=("PER_HEAD", "TIES"),
            comment="the other heads keep the shared scale positive; the zeros go to +s/(2n)",
        ),
        Sample("b = 16", (rng.standard_normal((4, 32)),), {"bits": 16}, flags=("WIDE",)),
        Sample("one column", (np.array([[2.0], [-0.5], [1e-3]]),), {"bits": 2}, comment="w̃ = ±½: a tie"),
    ]


def _statsq_errors():
    return [
        ErrorCase(
            "an all-zero row", (np.array([[1.0, -2.0], [0.0, 0.0]]),), {"bits": 2}, match="s = 0 in rows 1 "
        ),
        ErrorCase(
            "3-D: a row index zero in every head",
            (np.stack([np.array([[1.0, 2.0], [0.0, 0.0]])] * 2),),
            {"bits": 2},
            match=r"s = 0 for r = 1 ",
        ),
        ErrorCase("rank 4", (np.ones((2, 2, 2, 2)),), {"bits": 2}, match="2-D weight"),
        ErrorCase(
            "float32 row whose mean underflows",
            (np.array([[1.0, 2.0, 3.0], [1e-45, 0.0, 0.0]], dtype=np.float32),),
            {"bits": 2},
            match="s = 0 in rows 1 ",
        ),
    ]


def _statsq_known():
    return [
        Known(
            "ties by hand: W = [0, 1, −1, 2], b = 2",
            (TIES_ROW,),
            {"bits": 2},
            values={"w_q": [[0.5, 0.5, -1.5, 1.5]], "cotangent of 'W'": [[1.0, 1.0, 1.0, 1.0]]},
            source="by hand: s = 2, n·w̃ − ½ = [−½, ½, −3/2, 3/2 − 2e-6] rounds half to even to "
            "[0, 0, −2, 1]; the STE passes the all-ones cotangent",
        ),
        Known(
            "b = 1 below the grid",
            (ONE_BIT_ROW,),
            {"bits": 1},
            values={"w_q": [[-6.0, 2.0, 2.0], [2.0, -2.0, -2.0]]},
            source="by hand: s = 4, β = w̃ − ½ = [−3/2, −¼, −¼] → [−2, 0, 0]; "
            "[½ − 1e-6, −¾, −¾] → [0, −1, −1]",
        ),
        Known(
            "b = 1 below the grid, clamped",
            (ONE_BIT_ROW,),
            {"bits": 1, "clamp_levels": True},
            values={"w_q": [[-2.0, 2.0, 2.0], [2.0, -2.0, -2.0]]},
            source="by hand: the integer −2 clamped to −1, the level −s/2",
        ),
    ]


def _statsq_bench(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((rows, cols)) * 0.02,), {"bits": 4})


def _statsq_torch(torch, args, kwargs, cotangent):
    """The official StatsQuantizer.forward (2-D branch), its STE by autograd."""
    (W_np,) = args
    bits = kwargs["bits"]
    W = torch.from_numpy(W_np).requires_grad_(True)
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        scale = (2 * W.abs().mean(dim=1, keepdim=True)).detach()
        clipped = torch.clamp(W / scale, min=-1.0, max=1.0 - 1e-6)
        n = float(2 ** (bits - 1))
        quantized = scale * ((torch.round(clipped * n - 0.5) + 0.5) / n)
        out = quantized.detach() - W.detach() + W
        W.grad = None
        out.backward(g)
        return out

    return step


register(
    OpCases(
        "statsq_quantize",
        dims={"H": (1, 3), "R": (1, 5), "C": (1, 8)},
        random=_statsq_random,
        edges=_statsq_edges,
        errors=_statsq_errors,
        known=_statsq_known,
        notes=STATSQ_NOTES,
        defaults={"clamp_levels": False},
        stated_vjp=statsq_stated_vjp,
        bench=Bench(
            make=_statsq_bench,
            torch=_statsq_torch,
            torch_label="official StatsQuantizer.forward (2-D), STE by autograd",
        ),
    )
)


# -- cga_boundary_mask -------------------------------------------------------------------------------
def _cga_random(rng, H, R, C):
    shape = (R, C) if rng.random() < 0.5 else (H, R, C)
    kwargs = {
        "bits": int(rng.choice([1, 2, 3, 4])),
        # wide ranges as well, so that random weights do fall near a boundary
        "boundary_range": float(rng.choice([0.005, 0.007, 0.1, 0.3])),
    }
    return Sample("random", (_weight(rng, shape),), kwargs)


def boundary_row():
    """One row (s = 1, b = 2: β = 2w̃ − ½) with β at each boundary i + ½ (i = −2, −1, 0) offset by
    ±0.004 and ±0.006, and two fillers that make mean|W| = ½ and occupy the levels −2 and 1."""
    offsets = np.array([0.004, -0.004, 0.006, -0.006]) / 2  # in w̃: β moves twice as far
    centres = np.array([0.5, 0.0, -0.5])  # w̃ at β = ½, −½, −3/2
    placed = (centres[:, None] + offsets[None, :]).reshape(-1)  # 12 weights
    near = np.tile([True, True, False, False], 3)
    # fillers: 0.9 (β = 1.3, level 1) and a clipped −(7 − Σ|placed| − 0.9) (w̃ = −1, β = −2.5,
    # rint to −2; its boundary −2.5 is below the range [−2, 1))
    filler = 7.0 - np.abs(placed).sum() - 0.9
    row = np.concatenate([placed, [0.9, -filler]])  # 14 weights, Σ|W| = 7: s = 1
    return row[None, :], np.concatenate([near, [False, False]])[None, :]


def _cga_edges():
    rng = np.random.default_rng(820)
    row, _ = boundary_row()
    return [
        Sample("β = i + ½ ± {0.004, 0.006}, δ = 0.005", (row,), {"bits": 2}, flags=("BOUNDARY", "RANGE")),
        Sample("the same, δ = 0.007", (row,), {"bits": 2, "boundary_range": 0.007}, flags=("BOUNDARY",)),
        Sample("b = 1 with w̃ = −1", (ONE_BIT_ROW,), {"bits": 1, "boundary_range": 0.3}, flags=("ONE_BIT",)),
        Sample(
            "δ = 0", (TIES_ROW,), {"bits": 2, "boundary_range": 0.0}, comment="β = ±½ exactly: on a boundary"
        ),
        Sample("3-D per head", (rng.standard_normal((2, 3, 6)),), {"bits": 3, "boundary_range": 0.2}),
    ]


def _cga_errors():
    return [
        ErrorCase(
            "an all-zero row", (np.array([[0.0, 0.0], [1.0, 2.0]]),), {"bits": 2}, match="s = 0 in rows 0 "
        ),
        ErrorCase("rank 4", (np.ones((1, 2, 2, 2)),), {"bits": 2}, match="2-D weight"),
    ]


def _cga_known():
    row, near = boundary_row()
    return [
        Known(
            "β = i + ½ ± {0.004, 0.006}",
            (row,),
            {"bits": 2},
            values={"near_boundary": near.astype(np.float64)},
            source="the catalog's CGA test: within δ = 0.005 at ±0.004, outside at ±0.006",
        )
    ]


register(
    OpCases(
        "cga_boundary_mask",
        dims={"H": (1, 3), "R": (1, 5), "C": (2, 10)},
        random=_cga_random,
        edges=_cga_edges,
        errors=_cga_errors,
        known=_cga_known,
        notes=CGA_NOTES,
        defaults={"boundary_range": 0.005},
    )
)


# -- qkr_quantize ------------------------------------------------------------------------------------
def _qkr_random(rng, H, d, D):
    scale = float(rng.choice([0.05, 1.0, 10.0]))
    W_q = rng.standard_normal((H, d, D)) * scale
    W_k = rng.standard_normal((H, d, D)) * scale
    kwargs = {
        "bits": int(rng.choice([1, 2, 3, 4, 8])),
        "clamp_levels": bool(rng.choice([False, True])),
        "per_head_scale": bool(rng.choice([False, True])),
    }
    return Sample("random", (W_q, W_k), kwargs)


def _qkr_edges():
    rng = np.random.default_rng(2302)
    W_q, W_k = rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5))
    return [
        Sample(
            "doctest: one head, rank one",
            (np.array([[[1.0, 2.0]]]), np.array([[[1.0, -1.0]]])),
            {"bits": 2},
            flags=("ONE_HEAD", "RANK_ONE"),
        ),
        Sample("shared scale, b = 2", (W_q, W_k), {"bits": 2}),
        Sample("per-head scale, b = 2", (W_q, W_k), {"bits": 2, "per_head_scale": True}, flags=("PER_HEAD",)),
        Sample(
            "one head zero: the shared scale stays positive",
            (np.concatenate([np.zeros((1, 3, 5)), W_q[1:]]), W_k),
            {"bits": 3},
            comment="head 0's W_qk is 0: every entry rounds (β = −½, half to even) to +s/(2n)",
        ),
        Sample("b = 1, clamped", (W_q, W_k), {"bits": 1, "clamp_levels": True}),
    ]


def _qkr_errors():
    W_k = np.array([[[1.0, 2.0, 0.5]], [[-1.0, 0.5, 2.0]]])
    W_q = np.array([[[0.0, 1.0, 1.0]], [[0.0, 2.0, -1.0]]])  # column 0 zero: row 0 of W_qk zero
    W_q_one = np.array([[[0.0, 1.0, 1.0]], [[3.0, 2.0, -1.0]]])  # zero in head 0 only
    return [
        ErrorCase(
            "a row of W_qk zero in every head",
            (W_q, W_k),
            {"bits": 2},
            match="s = 0 in rows 0, zero in every head",
        ),
        ErrorCase(
            "per_head_scale: a row of one head zero",
            (W_q_one, W_k),
            {"bits": 2, "per_head_scale": True},
            match="s = 0 in row 0 of head 0",
        ),
    ]


def _qkr_known():
    return [
        Known(
            "doctest: W_qk = [[1, −1], [2, −2]], b = 2",
            (np.array([[[1.0, 2.0]]]), np.array([[[1.0, -1.0]]])),
            {"bits": 2},
            values={
                "w_qk": [[[0.5, -1.5], [1.0, -3.0]]],
                # G = ones: ∂W_q = W_k Gᵀ = [Σ_b W_k[b]]·1 = [0, 0]; ∂W_k = W_q G = [3, 3]
                "cotangent of 'W_q'": [[[0.0, 0.0]]],
                "cotangent of 'W_k'": [[[3.0, 3.0]]],
            },
            source="by hand: s = [2, 4], β = [½, −3/2] rounds half to even to [0, −2]",
        )
    ]


def _qkr_bench(rng, rows, cols):
    """DeiT-S attention: D = 384, H = 6 heads of d = 64."""
    return Sample(
        "bench",
        (rng.standard_normal((6, 64, 384)) * 0.05, rng.standard_normal((6, 64, 384)) * 0.05),
        {"bits": 4},
    )


def _qkr_torch(torch, args, kwargs, cotangent):
    """W_qᵀW_k per head (torch.matmul), the 3-D StatsQ of the official StatsQuantizer, autograd."""
    W_q, W_k = (torch.from_numpy(a).requires_grad_(True) for a in args)
    bits = kwargs["bits"]
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        W_qk = W_q.transpose(-2, -1) @ W_k
        scale = (2 * W_qk.abs().mean(dim=-1, keepdim=True).mean(dim=0, keepdim=True)).detach()
        clipped = torch.clamp(W_qk / scale, min=-1.0, max=1.0 - 1e-6)
        n = float(2 ** (bits - 1))
        quantized = scale * ((torch.round(clipped * n - 0.5) + 0.5) / n)
        out = quantized.detach() - W_qk.detach() + W_qk
        W_q.grad = W_k.grad = None
        out.backward(g)
        return out

    return step


def _qkr_blas(args, kwargs):
    """The three per-head products: W_qk = W_qᵀW_k (forward), ∂W_q = W_k Gᵀ and ∂W_k = W_q G."""
    W_q, W_k = (np.array(a) for a in args[:2])
    G = np.ones((W_q.shape[0], W_q.shape[2], W_k.shape[2]), dtype=W_q.dtype)

    def step():
        return W_q.transpose(0, 2, 1) @ W_k, W_k @ G.transpose(0, 2, 1), W_q @ G

    return step


register(
    OpCases(
        "qkr_quantize",
        dims={"H": (1, 3), "d": (1, 4), "D": (2, 6)},
        random=_qkr_random,
        edges=_qkr_edges,
        errors=_qkr_errors,
        known=_qkr_known,
        notes=QKR_NOTES,
        defaults={"clamp_levels": False, "per_head_scale": False},
        stated_vjp=qkr_stated_vjp,
        bench=Bench(
            make=_qkr_bench,
            torch=_qkr_torch,
            torch_label="W_qᵀW_k (torch.matmul), official StatsQuantizer 3-D branch, STE by autograd",
            blas=_qkr_blas,
        ),
    )
)
