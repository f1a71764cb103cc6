"""Conformance cases for `adaptive_projected_guidance`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "CFG": "η = 1, r = 0, β = 0: classifier-free guidance D_c + (w − 1)(D_c − D_u) exactly",
    "ZERO_COND": "D_c = 0: ‖D_c‖ is guarded by 1e-12, Δ_∥ = 0 (no 0/0)",
    "ZERO_UPDATE": "D_c = D_u with r > 0: ‖Δ‖ = 0, the rescaling factor is 1 (no r/0)",
    "RESCALE": "‖Δ‖ ≫ r: the update is capped at norm r; a kernel that rescales the state too, "
    "or divides by ‖Δ‖ before the momentum, returns another state or output",
    "MOMENTUM": "β < 0 with a running state: run' = Δ + β·run is the returned state (before rescaling)",
    "DIFFUSERS": "formulation='diffusers' at η = 0: D_u + w·Δ_⊥ keeps a −Δ_∥ term",
    "LATENT": "a (B, C, H, W) latent: the norms run over every non-batch axis, per sample",
    "SCALAR_SAMPLES": "(B,) predictions: each sample is one number (Δ_⊥ = 0 unless D_c = 0)",
}


def _shape(rng, B, n):  # noqa: N803
    shapes = [(B, n), (B, 1, n), (B, 2, n, 2)]
    return shapes[int(rng.integers(0, len(shapes)))]


def _random(rng, B, n):  # noqa: N803
    shape = _shape(rng, B, n)
    pred_cond = rng.standard_normal(shape) * float(rng.choice([0.5, 1.0, 3.0]))
    pred_uncond = pred_cond + rng.standard_normal(shape) * float(rng.choice([0.1, 1.0]))
    running = None
    if rng.integers(0, 3):
        running = rng.standard_normal(shape) * float(rng.choice([0.1, 1.0]))
    delta_norm = float(np.linalg.norm((pred_cond - pred_uncond).reshape(B, -1), axis=1).mean())
    kwargs = {
        "guidance_scale": float(rng.choice([1.0, 3.0, 7.5, 15.0])),
        "eta": float(rng.choice([0.0, 0.0, 0.5, 1.0, rng.uniform(-1, 2)])),
        # the cap binds for some samples and not others; kept away from ‖Δ‖ itself
        "norm_threshold": float(rng.choice([0.0, 0.3 * delta_norm, 3.0 * delta_norm + 1.0, 15.0])),
        "momentum": float(rng.choice([0.0, -0.5, -0.75, 0.3])),
        "formulation": str(rng.choice(["paper", "paper", "diffusers"])),
    }
    return Sample("random", (pred_cond, pred_uncond, running), kwargs)


def _edges():
    rng = np.random.default_rng(47)
    d_c = rng.standard_normal((2, 3, 4))
    d_u = d_c + 0.5 * rng.standard_normal((2, 3, 4))
    state = rng.standard_normal((2, 3, 4))
    base = {"guidance_scale": 7.5, "eta": 0.0, "norm_threshold": 0.0, "momentum": 0.0}
    return [
        Sample(
            "known value: Δ = (1, −1), D_c = (1, 0), w = 3, η = 0",
            (np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), None),
            {"guidance_scale": 3.0, "eta": 0.0, "norm_threshold": 0.0, "momentum": 0.0},
            comment="D = (1, 0) + 2·(0, −1) = (1, −2)",
        ),
        Sample(
            "η = 1, r = 0, β = 0: CFG",
            (d_c, d_u, None),
            {**base, "eta": 1.0},
            flags=("CFG",),
        ),
        Sample(
            "D_c = 0 in one sample",
            (np.concatenate([np.zeros((1, 3, 4)), d_c[1:]]), d_u, None),
            {**base, "eta": 0.5, "norm_threshold": 1.0},
            flags=("ZERO_COND",),
        ),
        Sample(
            "D_c = D_u in one sample, r > 0",
            (d_c, np.concatenate([d_c[:1], d_u[1:]]), state),
            {**base, "norm_threshold": 0.5, "momentum": 0.0},
            flags=("ZERO_UPDATE",),
        ),
        Sample(
            "‖Δ‖ ≫ r with reverse momentum",
            (d_c, d_c + 40.0 * (d_u - d_c), state),
            {**base, "norm_threshold": 1.0, "momentum": -0.5},
            flags=("RESCALE", "MOMENTUM"),
        ),
        Sample(
            "diffusers at η = 0",
            (d_c, d_u, state),
            {**base, "norm_threshold": 15.0, "momentum": -0.5, "formulation": "diffusers"},
            flags=("DIFFUSERS",),
        ),
        Sample(
            "(B, C, H, W) latent",
            (rng.standard_normal((2, 4, 8, 8)), rng.standard_normal((2, 4, 8, 8)), None),
            {"guidance_scale": 10.0, "eta": 0.0, "norm_threshold": 15.0, "momentum": -0.5},
            flags=("LATENT",),
        ),
        Sample(
            "(B,) scalar samples",
            (np.array([1.0, -2.0, 0.5]), np.array([0.0, -1.0, 2.0]), np.array([0.2, 0.1, -0.3])),
            {"guidance_scale": 5.0, "eta": 0.25, "norm_threshold": 0.5, "momentum": -0.5},
            flags=("SCALAR_SAMPLES",),
        ),
    ]


def _errors():
    return [
        ErrorCase(
            "0-d predictions",
            (np.array(1.0), np.array(0.5)),
            {"guidance_scale": 3.0, "eta": 0.0, "norm_threshold": 0.0, "momentum": 0.0},
            match="first axis is the batch",
        ),
    ]


def _bench_sample(rng, rows, cols):
    """B = rows samples of cols numbers each (a flattened latent), with a momentum state."""
    pred_cond = rng.standard_normal((rows, cols))
    pred_uncond = pred_cond + 0.3 * rng.standard_normal((rows, cols))
    running = rng.standard_normal((rows, cols))
    return Sample("bench", (pred_cond, pred_uncond, running))


def _apg_torch(torch, args, kwargs, cotangent):
    """Algorithm 1 in PyTorch (MomentumBuffer.update, the rescaling, project in float64)."""
    pred_cond, pred_uncond, running = (torch.from_numpy(a) for a in args)
    w, eta = kwargs["guidance_scale"], kwargs["eta"]
    threshold, beta = kwargs["norm_threshold"], kwargs["momentum"]
    dims = list(range(1, pred_cond.ndim))

    @torch.no_grad()
    def step():
        diff = pred_cond - pred_uncond
        new_running = diff + beta * running
        diff = new_running
        if threshold > 0:
            norm = diff.norm(p=2, dim=dims, keepdim=True)
            diff = diff * torch.minimum(torch.ones_like(diff), threshold / norm)
        v0, v1 = diff.double(), torch.nn.functional.normalize(pred_cond.double(), dim=dims)
        parallel = (v0 * v1).sum(dim=dims, keepdim=True) * v1
        orthogonal = v0 - parallel
        update = orthogonal.to(diff.dtype) + eta * parallel.to(diff.dtype)
        return pred_cond + (w - 1) * update, new_running

    return step


register(
    OpCases(
        "adaptive_projected_guidance",
        dims={"B": (1, 4), "n": (1, 8)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        defaults={"running": None, "formulation": "paper"},
        bench=Bench(
            make=_bench_sample,
            kwargs={"guidance_scale": 7.5, "eta": 0.0, "norm_threshold": 15.0, "momentum": -0.5},
            torch=_apg_torch,
            torch_label="Algorithm 1 (momentum, norm cap, float64 projection) in PyTorch",
        ),
    )
)
