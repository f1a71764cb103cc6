"""Conformance cases for `residual_vector_quantize` and `vq_codebook_commitment_loss` (custom
VJPs: checked against the stated formulas)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "TIES": "a vector exactly equidistant from several codewords (exact in every precision): the "
    "lowest index wins; argmax of −d, a reversed scan or a parallel reduction that keeps the last "
    "minimum breaks it",
    "OFFSET": "codewords 1e3 apart from the origin and 0.05–0.1 from the vector: the expanded "
    "distance ‖r‖² − 2r·e + ‖e‖² loses ~0.06 in float32 and picks the wrong code; direct "
    "differences do not",
    "PLAIN_VQ": "D = 1: plain vector quantization",
    "EXACT_HIT": "a codeword equals the vector: the residual is exactly 0 and the next depth "
    "quantizes 0 (no zero codeword: the residual grows)",
    "ONE_CODE": "K = 1: every index is 0",
    "SHARED_CODE": "several rows choose the same codeword: the codebook gradient adds their terms",
    "ZERO_ERROR": "residuals equal their codewords: loss and gradients are exactly 0",
}

#: a drawn sample is kept only when, at every depth, the best distance beats the second best by
#: this fraction of the distances' scale: float32 rounding (~1e-7 relative) cannot flip an index
MARGIN = 1e-3


def _margins_ok(z, codebooks):
    """Whether every argmin of the float64 reference has a clear runner-up."""
    residual = z.astype(np.float64)
    for codebook in codebooks.astype(np.float64):
        distances = ((residual[:, None, :] - codebook[None]) ** 2).sum(axis=2)
        scale = (np.abs(residual).max(axis=1, initial=0.0)[:, None] + np.abs(codebook).max()) ** 2
        if codebook.shape[0] > 1:
            best_two = np.sort(distances, axis=1)[:, :2]
            if np.any(best_two[:, 1] - best_two[:, 0] <= MARGIN * scale[:, 0] * z.shape[1]):
                return False
        residual = residual - codebook[np.argmin(distances, axis=1)]
    return True


def _draw_rvq(rng, N, C, D, K):  # noqa: N803
    """z and codebooks whose codewords shrink with depth (as trained RVQ codebooks do), drawn
    again until every argmin has a clear margin."""
    for _ in range(200):
        scale = float(rng.choice([0.1, 1.0, 20.0]))
        z = rng.standard_normal((N, C)) * scale
        shrink = 0.5 ** np.arange(D)[:, None, None]
        codebooks = rng.standard_normal((D, K, C)) * scale * shrink
        if _margins_ok(z, codebooks):
            return z, codebooks
    raise RuntimeError("no draw with clear argmin margins")  # pragma: no cover


def stated_rvq_vjp(args, kwargs, cotangents):
    """Straight through ẑ and identity through each residual: z̄ = ẑ̄ + Σ_d r̄_{d−1}; float64."""
    _, g_z_q, g_residuals = cotangents
    g_z = np.zeros(np.shape(args[0]))
    if g_z_q is not None:
        g_z = g_z + np.asarray(g_z_q, dtype=np.float64)
    if g_residuals is not None:
        for d in range(np.shape(g_residuals)[0]):
            g_z = g_z + np.asarray(g_residuals[d], dtype=np.float64)
    return [g_z]


def _rvq_random(rng, N, C, D, K):  # noqa: N803
    z, codebooks = _draw_rvq(rng, N, C, D, K)
    return Sample("random", (z, codebooks))


def _rvq_edges():
    rng = np.random.default_rng(166)
    z, codebooks = _draw_rvq(rng, 5, 3, 1, 4)
    z_one, codebooks_one = _draw_rvq(rng, 3, 2, 2, 1)
    offset_z = np.array([[1000.3, 1000.3], [999.7, 1000.25]])
    offset_codes = np.array([[[1000.25, 1000.25], [1000.4, 1000.4], [999.75, 999.75]]])
    hit_codes = np.array([[[1.0, 2.0], [0.0, -1.0]], [[0.5, 0.5], [1.0, -2.0]]])
    return [
        Sample(
            "known value",
            (np.array([[1.25, -0.5]]), np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.25, -0.5], [0.0, 0.0]]])),
            comment="indices (0, 0), ẑ = z, residuals z and (0.25, −0.5)",
        ),
        Sample(
            "exact ties: lowest index",
            (
                np.array([[0.0, 0.0], [0.5, 0.5], [2.0, 0.0]]),
                np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]]]),
            ),
            flags=("TIES",),
            comment="row 0 is at distance 1 from codes 0, 1, 2 and 3; row 2 from the duplicates 0 and 3",
        ),
        Sample(
            "duplicate codewords over two depths",
            (
                np.array([[0.25, 0.75], [-0.5, 0.5]]),
                np.array([[[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]], [[0.5, 0.0], [0.0, 0.0], [0.5, 0.0]]]),
            ),
            flags=("TIES",),
        ),
        Sample("D = 1 (plain VQ)", (z, codebooks), flags=("PLAIN_VQ",)),
        Sample("K = 1", (z_one, codebooks_one), flags=("ONE_CODE",)),
        Sample("offset 1e3, nearly equal codes", (offset_z, offset_codes), flags=("OFFSET",)),
        Sample(
            "codeword equals the vector",
            (np.array([[1.0, 2.0], [0.25, -1.0]]), hit_codes),
            flags=("EXACT_HIT",),
            comment="row 0 hits code 0: r_1 = 0, then code 0 of depth 2 (0.5, 0.5) is the nearest",
        ),
    ]


def _rvq_torch(torch, args, kwargs, cotangent):
    """The same search in PyTorch: torch.cdist with direct differences
    (compute_mode="donot_use_mm_for_euclid_dist"), argmin, gather; the straight-through
    backward ẑ̄ + Σ r̄ by hand."""
    z, codebooks = (torch.from_numpy(a) for a in args)
    _, g_z_q, g_residuals = (torch.from_numpy(np.asarray(c)) if c is not None else None for c in cotangent)

    def step():
        residual = z
        z_q = torch.zeros_like(z)
        indices, residuals = [], []
        for codebook in codebooks:
            residuals.append(residual)
            distances = torch.cdist(residual, codebook, compute_mode="donot_use_mm_for_euclid_dist")
            chosen = distances.argmin(dim=1)
            quantized = codebook[chosen]
            indices.append(chosen)
            z_q = z_q + quantized
            residual = residual - quantized
        _g_z = g_z_q + g_residuals.sum(0)  # the backward z̄, timed (the test compares the forward)
        return torch.stack(indices, 1), z_q, torch.stack(residuals)

    return step


def _rvq_blas(args, kwargs):
    """The distances' work as products: r_{d−1} (N, C) @ E⁽ᵈ⁾ᵀ (C, K) per depth (N·K·C
    multiply-adds each, what the direct differences take); the backward has no products."""
    z, codebooks = (np.array(a) for a in args)

    def step():
        return [z @ codebook.T for codebook in codebooks]

    return step


def _rvq_bench(rng, rows, cols):
    depth, codes, width = 4, 256, 32
    z = rng.standard_normal((rows, width))
    codebooks = rng.standard_normal((depth, codes, width)) * 0.5 ** np.arange(depth)[:, None, None]
    return Sample("bench", (z, codebooks))


register(
    OpCases(
        "residual_vector_quantize",
        dims={"N": (1, 6), "C": (1, 4), "D": (1, 3), "K": (1, 5)},
        random=_rvq_random,
        edges=_rvq_edges,
        notes=NOTES,
        defaults={},
        stated_vjp=stated_rvq_vjp,
        bench=Bench(
            make=_rvq_bench,
            torch=_rvq_torch,
            torch_label="torch.cdist (direct differences), argmin, gather per depth; ST backward by hand",
            blas=_rvq_blas,
        ),
    )
)


# -- vq_codebook_commitment_loss ------------------------------------------------------------
def stated_loss_vjp(args, kwargs, cotangents):
    """r̄ = 2βs·L̄·(r − q), Ē_k = Σ over the rows choosing k of 2s·L̄·(q − r); float64, by loops."""
    residuals, codebooks, indices = args
    residuals = np.asarray(residuals, dtype=np.float64)
    codebooks = np.asarray(codebooks, dtype=np.float64)
    beta = kwargs.get("beta", 0.25)
    depth, rows, width = residuals.shape
    scale = 1.0 / (rows * width) if kwargs.get("reduction", "mean") == "mean" else 1.0
    g = float(np.asarray(cotangents[0]))
    g_residuals = np.zeros_like(residuals)
    g_codebooks = np.zeros_like(codebooks)
    for d in range(depth):
        for n in range(rows):
            k = int(indices[n, d])
            delta = residuals[d, n] - codebooks[d, k]
            g_residuals[d, n] = 2 * beta * scale * g * delta
            g_codebooks[d, k] -= 2 * scale * g * delta
    return [g_residuals, g_codebooks]


def _loss_random(rng, N, C, D, K):  # noqa: N803
    scale = float(rng.choice([0.1, 1.0, 20.0]))
    residuals = rng.standard_normal((D, N, C)) * scale
    codebooks = rng.standard_normal((D, K, C)) * scale
    indices = rng.integers(0, K, size=(N, D))
    kwargs = {
        "beta": float(rng.choice([0.25, 0.0, 1.0, 2.0])),
        "reduction": str(rng.choice(["mean", "sum"])),
    }
    return Sample("random", (residuals, codebooks, indices), kwargs)


def _loss_edges():
    rng = np.random.default_rng(17)
    codebooks = rng.standard_normal((2, 3, 4))
    indices = np.array([[0, 2], [0, 2], [1, 2], [0, 0]])
    chosen = np.stack([codebooks[d][indices[:, d]] for d in range(2)])
    return [
        Sample(
            "known value",
            (np.array([[[1.0, 2.0]]]), np.array([[[0.0, 0.0], [1.0, 1.0]]]), np.array([[1]])),
            comment="‖δ‖² = 1 over N·C = 2, ×(1 + 0.25): 0.625",
        ),
        Sample(
            "shared codewords",
            (chosen + rng.standard_normal(chosen.shape), codebooks, indices),
            {"beta": 0.5},
            flags=("SHARED_CODE",),
        ),
        Sample("zero error", (chosen, codebooks, indices), flags=("ZERO_ERROR",)),
        Sample(
            "β = 0, sum",
            (rng.standard_normal((2, 4, 4)), codebooks, indices),
            {"beta": 0.0, "reduction": "sum"},
        ),
    ]


register(
    OpCases(
        "vq_codebook_commitment_loss",
        dims={"N": (1, 6), "C": (1, 4), "D": (1, 3), "K": (1, 5)},
        random=_loss_random,
        edges=_loss_edges,
        notes=NOTES,
        defaults={"beta": 0.25, "reduction": "mean"},
        stated_vjp=stated_loss_vjp,
    )
)
