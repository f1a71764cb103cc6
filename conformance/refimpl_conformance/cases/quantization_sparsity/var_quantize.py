"""Conformance cases for `multiscale_vq_loss` (custom VJP: the stop-gradient formula) and
`multiscale_residual_quantize` (custom VJP: straight through f̂, exact for E and φ)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ONE_SCALE": "K = 1: the VQ-VAE loss of one reconstruction",
    "EXACT": "f̂_k = f at every scale: loss and gradients exactly 0",
    "BETA_ZERO": "β = 0: f gets no gradient",
    "OFFSET": "features 1e3 + O(1): the differences are taken before squaring",
}


def stated_vjp(args, kwargs, cotangents):
    """f̄ = (2βL̄/(Kn)) Σ_k (f − f̂_k), f̂̄_k = (2L̄/(Kn))(f̂_k − f); float64."""
    f, f_hats = (np.asarray(a, dtype=np.float64) for a in args)
    beta = kwargs.get("beta", 0.25)
    g = float(np.asarray(cotangents[0]))
    scales, size = f_hats.shape[0], f.size
    g_f = np.zeros_like(f)
    g_f_hats = np.zeros_like(f_hats)
    for k in range(scales):
        g_f += 2 * beta * g / (scales * size) * (f - f_hats[k])
        g_f_hats[k] = 2 * g / (scales * size) * (f_hats[k] - f)
    return [g_f, g_f_hats]


def _random(rng, K, B, C, H, W):  # noqa: N803
    scale = float(rng.choice([0.1, 1.0, 30.0]))
    f = rng.standard_normal((B, C, H, W)) * scale
    # partial reconstructions approach f as the scales refine
    f_hats = (
        f[None]
        + rng.standard_normal((K, B, C, H, W)) * scale * 0.5 ** np.arange(K)[:, None, None, None, None]
    )
    return Sample("random", (f, f_hats), {"beta": float(rng.choice([0.25, 0.0, 1.0]))})


def _edges():
    rng = np.random.default_rng(175)
    f = rng.standard_normal((2, 3, 4, 4))
    return [
        Sample("K = 1", (f, f[None] + 0.1 * rng.standard_normal((1, 2, 3, 4, 4))), flags=("ONE_SCALE",)),
        Sample("exact reconstruction", (f, np.stack([f, f, f])), flags=("EXACT",)),
        Sample(
            "β = 0", (f, f[None] + rng.standard_normal((2, 2, 3, 4, 4))), {"beta": 0.0}, flags=("BETA_ZERO",)
        ),
        Sample(
            "offset 1e3",
            (f + 1e3, f[None] + 1e3 + 0.01 * rng.standard_normal((3, 2, 3, 4, 4))),
            flags=("OFFSET",),
            dtypes=("float64",),
        ),
    ]


def _known():
    f = np.zeros((1, 1, 1, 2))
    f_hats = np.array([[[[[1.0, 1.0]]]], [[[[0.0, 2.0]]]]])
    return [
        Known(
            "hand value",
            (f, f_hats),
            {},
            {"loss": 1.875, "cotangent of 'f'": [[[[-0.125, -0.375]]]]},
            source="by hand: 1.25·(2/2 + 4/2)/2; f̄ = 2·0.25/(2·2)·((0 − 1) + (0 − 0), (0 − 1) + (0 − 2))",
        )
    ]


def _torch(torch, args, kwargs, cotangent):
    """VAR's loss with F.mse_loss and .detach() per scale, times 1/K; autograd backward."""
    f = torch.from_numpy(np.asarray(args[0])).clone().requires_grad_(True)
    f_hats = torch.from_numpy(np.asarray(args[1])).clone().requires_grad_(True)
    beta = kwargs.get("beta", 0.25)
    g = torch.from_numpy(np.asarray(cotangent))
    functional = torch.nn.functional

    def step():
        loss = 0.0
        for f_hat in f_hats:
            loss = (
                loss + functional.mse_loss(f_hat.detach(), f) * beta + functional.mse_loss(f_hat, f.detach())
            )
        loss = loss / f_hats.shape[0]
        loss.backward(g)
        return loss.detach()

    return step


def _bench(rng, rows, cols):
    f = rng.standard_normal((8, 32, 16, 16))
    return Sample("bench", (f, f[None] + 0.1 * rng.standard_normal((10, 8, 32, 16, 16))))


register(
    OpCases(
        "multiscale_vq_loss",
        dims={"K": (1, 4), "B": (1, 2), "C": (1, 3), "H": (1, 3), "W": (1, 3)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        defaults={"beta": 0.25},
        stated_vjp=stated_vjp,
        bench=Bench(make=_bench, torch=_torch, torch_label="F.mse_loss with .detach() per scale; autograd"),
    )
)


# -- multiscale_residual_quantize -------------------------------------------------------------
RESIDUAL_NOTES = {
    "ONE_SCALE": "K = 1: plain VQ of every position, then φ (the official φ index divides by zero)",
    "EXACT": "coarse means 0 pick the zero code, the codebook holds f's values and φ = identity: "
    "f̂ = f exactly",
    "TIES": "duplicate codewords: the lowest index wins at every scale",
    "ZNORM": "using_znorm: cosine picks a code the distance would not",
    "VAR_SCALES": "VAR's ten scales on 16 × 16 (area windows overlap at 13, 10, 6, ...; bicubic "
    "taps clamp at the border) with the four partially shared φ",
    "IDENTITY_PHI": "ρ = 0: φ is the identity and W, b get zero gradients",
}

#: a drawn sample is kept only when every code choice beats the runner-up by this fraction of
#: the distances' scale (float32 rounding cannot flip an index)
RESIDUAL_MARGIN = 1e-3

_VAR_SCALES = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)


def _keys(d):
    """Keys' cubic kernel at |d| ≤ 2 with a = −0.75 (PyTorch's bicubic)."""
    a, d = -0.75, np.abs(d)
    near = (a + 2) * d**3 - (a + 3) * d**2 + 1
    far = a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
    return np.where(d <= 1, near, far)


def _bicubic_last_axis(x, size):
    """Bicubic resize of the last axis by gathering the four clamped taps (align_corners=False)."""
    n = x.shape[-1]
    source = (n / size) * (np.arange(size) + 0.5) - 0.5
    base = np.floor(source).astype(int)
    out = 0.0
    for offset in (-1, 0, 1, 2):
        tap = np.clip(base + offset, 0, n - 1)
        out = out + _keys(source - (base + offset)) * x[..., tap]
    return out


def _area_last_axis(x, size):
    """Adaptive average pooling of the last axis by explicit windows."""
    n = x.shape[-1]
    parts = [x[..., (i * n) // size : -((-(i + 1) * n) // size)].mean(axis=-1) for i in range(size)]
    return np.stack(parts, axis=-1)


def _conv(h, weight, bias):
    """3×3 cross-correlation with zero padding, as a sum over the nine shifts."""
    height, width = h.shape[2:]
    padded = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.broadcast_to(bias[None, :, None, None], (h.shape[0], weight.shape[0], height, width)).copy()
    for dy in range(3):
        for dx in range(3):
            out += np.einsum(
                "oi,bihw->bohw", weight[:, :, dy, dx], padded[:, :, dy : dy + height, dx : dx + width]
            )
    return out


def _phi_index(k, scales, convs):
    ticks = (
        np.linspace(1 / 3 / convs, 1 - 1 / 3 / convs, convs)
        if convs == 4
        else np.linspace(1 / 2 / convs, 1 - 1 / 2 / convs, convs)
    )
    return int(np.argmin(np.abs(ticks - (k / (scales - 1) if scales > 1 else 0.0))))


def _stated_forward(args, kwargs, frozen=None):
    """An independent float64 forward: (indices per scale, f_hats, smallest relative margin)."""
    f, codebook, weights, biases = (np.asarray(a, dtype=np.float64) for a in args)
    patch_nums = kwargs.get("patch_nums")
    scales = _VAR_SCALES if patch_nums is None else [int(n) for n in patch_nums]
    rho, znorm = kwargs.get("quant_resi", 0.5), kwargs.get("using_znorm", False)
    height = f.shape[2]
    rest, f_hat, f_hats, chosen, margin = f.copy(), np.zeros_like(f), [], [], np.inf
    for k, size in enumerate(scales):
        last = k == len(scales) - 1
        z = (
            rest
            if last
            else np.swapaxes(_area_last_axis(np.swapaxes(_area_last_axis(rest, size), 2, 3), size), 2, 3)
        )
        rows = np.moveaxis(z, 1, 3).reshape(-1, f.shape[1])
        if znorm:
            unit = rows / np.maximum(np.sqrt((rows**2).sum(1, keepdims=True)), 1e-12)
            codes = codebook / np.maximum(np.sqrt((codebook**2).sum(1, keepdims=True)), 1e-12)
            scores, spread = -(unit @ codes.T), 2.0
        else:
            scores = ((rows[:, None, :] - codebook[None]) ** 2).sum(axis=2)
            spread = (np.abs(rows).max() + np.abs(codebook).max()) ** 2 * f.shape[1] + 1e-300
        idx = np.argmin(scores, axis=1) if frozen is None else frozen[k]
        if codebook.shape[0] > 1:
            best = np.sort(scores, axis=1)
            margin = min(margin, float((best[:, 1] - best[:, 0]).min()) / spread)
        e = np.moveaxis(codebook[idx].reshape(f.shape[0], size, size, f.shape[1]), 3, 1)
        h = (
            e
            if last
            else np.swapaxes(
                _bicubic_last_axis(np.swapaxes(_bicubic_last_axis(e, height), 2, 3), height), 2, 3
            )
        )
        p = _phi_index(k, len(scales), weights.shape[0])
        refined = (1 - rho) * h + rho * _conv(h, weights[p], biases[p])
        f_hat, rest = f_hat + refined, rest - refined
        f_hats.append(f_hat)
        chosen.append(idx)
    return chosen, np.stack(f_hats), margin


def stated_residual_vjp(args, kwargs, cotangents):
    """f̄ = f̂̄_ST (straight through); Ē, W̄, b̄ = ⟨f̂̄_k, ∂f̂_k/∂θ⟩ for the indices held fixed, by
    central differences of the independent forward with unit steps: f̂_k is linear in each
    single coordinate of E, W and b, so the differences are exact up to rounding."""
    _, g_f_hat, g_f_hats = cotangents
    chosen, _, _ = _stated_forward(args, kwargs)
    g_f = np.zeros(np.shape(args[0])) if g_f_hat is None else np.asarray(g_f_hat, dtype=np.float64)
    params = [np.asarray(a, dtype=np.float64) for a in args]
    grads = [g_f]
    for position in (1, 2, 3):
        grad = np.zeros(params[position].shape)
        if g_f_hats is not None:
            for flat in range(grad.size):
                shifted = []
                for sign in (1.0, -1.0):
                    moved = [a.copy() for a in params]
                    moved[position].flat[flat] += sign
                    shifted.append(_stated_forward(moved, kwargs, frozen=chosen)[1])
                grad.flat[flat] = (
                    np.sum(np.asarray(g_f_hats, dtype=np.float64) * (shifted[0] - shifted[1])) / 2
                )
        grads.append(grad)
    return grads


def _residual_draw(rng, B, C, V, P, K, H):  # noqa: N803
    """Inputs with clear code choices at every scale (redrawn until the margin holds)."""
    for _ in range(200):
        scales = sorted(int(n) for n in rng.choice(np.arange(1, H), size=min(K, H) - 1, replace=False)) + [H]
        scale = float(rng.choice([0.1, 1.0, 20.0]))
        f = rng.standard_normal((B, C, H, H)) * scale
        codebook = rng.standard_normal((V, C)) * scale
        weights = rng.standard_normal((P, C, C, 3, 3)) * 0.3
        biases = rng.standard_normal((P, C)) * 0.1 * scale
        kwargs = {
            "patch_nums": np.array(scales),
            "quant_resi": float(rng.choice([0.5, 0.0, 0.25, 1.0])),
            "using_znorm": bool(rng.random() < 0.3),
        }
        args = (f, codebook, weights, biases)
        if _stated_forward(args, kwargs)[2] > RESIDUAL_MARGIN:
            return args, kwargs
    raise RuntimeError("no draw with clear code margins")  # pragma: no cover


def _residual_random(rng, B, C, V, P, K, H):  # noqa: N803
    args, kwargs = _residual_draw(rng, B, C, V, P, K, H)
    return Sample("random", args, kwargs)


def _residual_edges():
    rng = np.random.default_rng(1750)
    one_args, one_kwargs = _residual_draw(rng, 2, 2, 4, 1, 1, 3)
    f_exact = np.array([[[[0.5, -0.5], [-1.5, 1.5]]]])
    codes_exact = np.array([[0.0], [0.5], [-0.5], [1.5], [-1.5]])
    f16 = rng.standard_normal((1, 2, 16, 16))
    codes16 = rng.standard_normal((8, 2))
    ties_codes = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    ties_f = np.zeros((1, 2, 2, 2))
    ties_f[0, 0] = [[1.0, 1.0], [1.0, 1.0]]
    ties_f[0, 1] = [[0.0, 1.0], [0.0, 0.0]]
    zero_phi = (np.zeros((1, 1, 1, 3, 3)), np.zeros((1, 1)))
    return [
        Sample("K = 1", one_args, {**one_kwargs, "patch_nums": np.array([3])}, flags=("ONE_SCALE",)),
        Sample(
            "exact reconstruction",
            (f_exact, codes_exact, *zero_phi),
            {"patch_nums": np.array([1, 2]), "quant_resi": 0.0},
            flags=("EXACT", "IDENTITY_PHI"),
        ),
        Sample(
            "duplicate codewords",
            (ties_f, ties_codes, np.zeros((2, 2, 2, 3, 3)), np.zeros((2, 2))),
            {"patch_nums": np.array([1, 2]), "quant_resi": 0.5},
            flags=("TIES",),
            comment="scale 1: mean (1, 0.25) ties codes 0 and 1 (0 wins); scale 2: rows tie codes 0 and 4, "
            "and the duplicates 2 and 3",
        ),
        Sample(
            "cosine search",
            (
                np.array([[[[3.0]], [[0.2]]]]),
                np.array([[2.9, 0.5], [0.3, 0.0]]),
                *(np.zeros((1, 2, 2, 3, 3)), np.zeros((1, 2))),
            ),
            {"patch_nums": np.array([1]), "using_znorm": True},
            flags=("ZNORM",),
            comment="distance picks code 0 (0.09 + 0.09), cosine code 1 (cos 1.0 vs 0.992)",
        ),
        Sample(
            "VAR scales, four shared φ",
            (f16, codes16, rng.standard_normal((4, 2, 2, 3, 3)) * 0.3, rng.standard_normal((4, 2)) * 0.1),
            flags=("VAR_SCALES",),
        ),
    ]


def _residual_errors():
    f = np.zeros((1, 1, 4, 4))
    params = (np.ones((2, 1)), np.zeros((1, 1, 1, 3, 3)), np.zeros((1, 1)))
    return [
        ErrorCase("last scale ≠ H", (f, *params), {"patch_nums": np.array([1, 2, 3])}, match="last scale"),
        ErrorCase("default scales need H = 16", (f, *params), {}, match="H = W = 16"),
        ErrorCase(
            "non-square f", (np.zeros((1, 1, 4, 3)), *params), {"patch_nums": np.array([1, 4])}, match="H = W"
        ),
    ]


def _residual_known():
    f = np.array([[[[1.0, 3.0], [1.0, 3.0]]]])
    codebook = np.array([[2.0], [-1.0], [1.0]])
    return [
        Known(
            "hand value",
            (f, codebook, np.zeros((1, 1, 1, 3, 3)), np.zeros((1, 1))),
            {"patch_nums": np.array([1, 2]), "quant_resi": 0.0},
            {
                "indices": [[0, 1, 2, 1, 2]],
                "f_hat": [[[[1.0, 3.0], [1.0, 3.0]]]],
                "f_hats": [[[[[2.0, 2.0], [2.0, 2.0]]]], [[[[1.0, 3.0], [1.0, 3.0]]]]],
            },
            source="by hand: the 2×2 mean 2 is code 0, bicubic of a 1×1 map is constant; the "
            "residual (−1, 1) per row picks codes 1 and 2",
        ),
        Known(
            "φ = bias only",
            (np.full((1, 1, 1, 1), 4.0), np.array([[1.0]]), np.zeros((1, 1, 1, 3, 3)), np.array([[2.0]])),
            {"patch_nums": np.array([1]), "quant_resi": 0.5},
            {"f_hat": [[[[1.5]]]]},
            source="by hand: φ(1) = 0.5·1 + 0.5·(0·1 + 2) = 1.5",
        ),
    ]


def _residual_torch(torch, args, kwargs, cotangent):
    """VAR's f_to_idxBl_or_fhat in PyTorch: F.interpolate (area, bicubic), torch.cdist with
    direct differences and argmin, F.conv2d for φ; straight-through output; autograd backward."""
    functional = torch.nn.functional
    f = torch.from_numpy(np.asarray(args[0])).clone().requires_grad_(True)
    codebook, weights, biases = (
        torch.from_numpy(np.asarray(a)).clone().requires_grad_(True) for a in args[1:]
    )
    patch_nums = kwargs.get("patch_nums")
    scales = _VAR_SCALES if patch_nums is None else [int(n) for n in patch_nums]
    rho = kwargs.get("quant_resi", 0.5)
    _, g_f_hat, g_f_hats = (torch.from_numpy(np.asarray(c)) if c is not None else None for c in cotangent)

    def step():
        batch, channels, height, width = f.shape
        rest = f.detach().clone()
        f_hat = torch.zeros_like(rest)
        indices, f_hats = [], []
        for k, size in enumerate(scales):
            last = k == len(scales) - 1
            z = rest if last else functional.interpolate(rest, size=(size, size), mode="area")
            rows = z.permute(0, 2, 3, 1).reshape(-1, channels)
            idx = torch.cdist(rows, codebook.detach(), compute_mode="donot_use_mm_for_euclid_dist").argmin(
                dim=1
            )
            e = codebook[idx].reshape(batch, size, size, channels).permute(0, 3, 1, 2)
            h = e if last else functional.interpolate(e, size=(height, width), mode="bicubic")
            p = _phi_index(k, len(scales), weights.shape[0])
            h = h * (1 - rho) + functional.conv2d(h, weights[p], biases[p], padding=1) * rho
            f_hat = f_hat + h
            rest = rest - h.detach()
            indices.append(idx.reshape(batch, -1))
            f_hats.append(f_hat)
        f_hats_all = torch.stack(f_hats)
        f_hat_st = (f_hat.detach() - f.detach()) + f
        torch.autograd.backward([f_hat_st, f_hats_all], [g_f_hat, g_f_hats])
        return torch.cat(indices, 1), f_hat_st.detach(), f_hats_all.detach()

    return step


def _residual_bench(rng, rows, cols):
    f = rng.standard_normal((4, 32, 16, 16))
    return Sample(
        "bench",
        (
            f,
            rng.standard_normal((4096, 32)),
            rng.standard_normal((4, 32, 32, 3, 3)) * 0.05,
            np.zeros((4, 32)),
        ),
    )


register(
    OpCases(
        "multiscale_residual_quantize",
        dims={"B": (1, 2), "C": (1, 3), "V": (1, 5), "P": (1, 4), "K": (1, 4), "H": (1, 5)},
        random=_residual_random,
        edges=_residual_edges,
        errors=_residual_errors,
        known=_residual_known,
        notes=RESIDUAL_NOTES,
        defaults={"patch_nums": None, "quant_resi": 0.5, "using_znorm": False},
        stated_vjp=stated_residual_vjp,
        bench=Bench(
            make=_residual_bench,
            torch=_residual_torch,
            torch_label="F.interpolate (area, bicubic), cdist argmin, conv2d per scale; ST output; autograd",
        ),
    )
)
