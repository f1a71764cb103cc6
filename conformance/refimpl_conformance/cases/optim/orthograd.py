"""Conformance cases for `orthograd_step`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "PARALLEL": "g = c·w exactly: ‖g_⊥‖ = 0 and the result is 0; without that rule the rescaled "
    "path multiplies 0 by ‖g‖/1e-30, which is inf in float32 when ‖g‖ > 3.4e8: 0·inf = NaN",
    "ZERO_WEIGHTS": "w = 0: c = 0/(0 + 1e-30) = 0, g passes unchanged (rescaled by ‖g‖/‖g‖ = 1)",
    "ZERO_GRADIENT": "g = 0: the result is 0 on both paths",
    "SCALE": "w ~ 1e6, g ~ 1e-6: the coefficient is scale-aware, no fixed threshold may bind",
    "TINY_WEIGHTS": "‖w‖² ~ 1e-30: the official guard ε = 1e-30 halves the projection there",
    "EMPTY": "a parameter tensor with no elements: nothing to transform, no crash",
}

#: random samples keep |cos(w, g)| below this: nearer to parallel, g_⊥ is mostly rounding
#: noise and the rescaled path inflates it to norm ‖g‖ in a direction no backend agrees on
MAX_COSINE = 0.95


def _shape(rng, rank, size):
    while True:
        shape = tuple(int(d) for d in rng.integers(1, size + 1, size=rank))
        if int(np.prod(shape)) >= 2:  # one element: g is always parallel to w
            return shape


def _cosine(w, g):
    return abs(float(np.vdot(w, g))) / max(float(np.linalg.norm(w) * np.linalg.norm(g)), 1e-300)


def _random(rng, rank, size):
    shape = _shape(rng, rank, size)
    w = rng.standard_normal(shape) * float(rng.choice([0.02, 1.0, 30.0]))
    scale = float(10 ** rng.uniform(-4, 2))
    g = rng.standard_normal(shape) * scale
    # a share of the gradient along w, as after memorization, but never near parallel
    g = g + float(rng.uniform(-2, 2)) * scale * w / max(float(np.linalg.norm(w)), 1e-300) * np.sqrt(g.size)
    while _cosine(w, g) > MAX_COSINE:
        g = rng.standard_normal(shape) * scale
    return Sample("random", (np.asarray(w), np.asarray(g)), {"rescale": bool(rng.integers(0, 2))})


def _edges():
    rng = np.random.default_rng(20)
    w = rng.standard_normal((4, 5))
    g = rng.standard_normal((4, 5))
    parallel_w = np.array([0.0, 2.0, 0.0, 0.0])
    parallel_g = np.array([0.0, 6e9, 0.0, 0.0])
    return [
        Sample(
            "known value: w = e1, g = (3, 4)",
            (np.array([1.0, 0.0]), np.array([3.0, 4.0])),
            comment="g_⊥ = (0, 4)",
        ),
        Sample(
            "known value, rescaled: (0, 5)",
            (np.array([1.0, 0.0]), np.array([3.0, 4.0])),
            {"rescale": True},
        ),
        Sample(
            "g = 3e9·w exactly, rescaled",
            (parallel_w, parallel_g),
            {"rescale": True},
            flags=("PARALLEL",),
            comment="c = 1.2e10/4 = 3e9 exactly in both dtypes: g_⊥ = 0 exactly, result 0",
        ),
        Sample("g = 3e9·w exactly", (parallel_w, parallel_g), flags=("PARALLEL",)),
        Sample(
            "w = 0",
            (np.zeros((3, 2)), rng.standard_normal((3, 2))),
            {"rescale": True},
            flags=("ZERO_WEIGHTS",),
        ),
        Sample("g = 0", (rng.standard_normal(5), np.zeros(5)), {"rescale": True}, flags=("ZERO_GRADIENT",)),
        Sample("w ~ 1e6, g ~ 1e-6", (w * 1e6, g * 1e-6), {"rescale": True}, flags=("SCALE",)),
        Sample(
            "‖w‖² ~ 1e-30",
            (np.array([6e-16, -8e-16]), np.array([1.0, 2.0])),
            flags=("TINY_WEIGHTS",),
            comment="⟨w, w⟩ = 1e-30: c = −1e-15/2e-30, g_⊥ = (1.3, 1.6); without the guard (1.6, 1.2)",
        ),
        Sample(
            "empty parameter tensor",
            (np.zeros((0, 3)), np.zeros((0, 3))),
            {"rescale": True},
            flags=("EMPTY",),
        ),
        Sample(
            "4096 coordinates",
            (rng.standard_normal(4096), rng.standard_normal(4096)),
            {"rescale": True},
        ),
    ]


def _bench_sample(rng, rows, cols):
    """A (rows, cols) weight matrix and its gradient (the sampler draws small tensors)."""
    return Sample("bench", (rng.standard_normal((rows, cols)), rng.standard_normal((rows, cols))))


def _orthograd_torch(torch, args, kwargs, cotangent):
    """The official OrthoGrad projection and rescaling, in PyTorch (torch.dot, norm)."""
    w, g = (torch.from_numpy(a).reshape(-1) for a in args)
    shape = args[1].shape
    rescale = kwargs.get("rescale", False)

    def step():
        with torch.no_grad():
            g_perp = g - (torch.dot(w, g) / (torch.dot(w, w) + 1e-30)) * w
            if rescale:
                g_perp = g_perp * (g.norm(2) / (g_perp.norm(2) + 1e-30))
            return g_perp.reshape(shape)

    return step


register(
    OpCases(
        "orthograd_step",
        dims={"rank": (1, 3), "size": (2, 6)},  # one element: always parallel
        random=_random,
        edges=_edges,
        notes=NOTES,
        defaults={"rescale": False},
        bench=Bench(
            make=_bench_sample,
            kwargs={"rescale": True},
            torch=_orthograd_torch,
            torch_label="g − (⟨w,g⟩/(⟨w,w⟩ + 1e-30))·w, rescaled by ‖g‖/‖g_⊥‖ (torch.dot, Tensor.norm)",
        ),
    )
)
