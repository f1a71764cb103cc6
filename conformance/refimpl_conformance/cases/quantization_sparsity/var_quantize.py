"""Conformance cases for `multiscale_vq_loss` (custom VJP: the stop-gradient formula)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

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
