"""Conformance cases for `gradient_coherence`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "IDENTICAL": "m identical gradients: α = 1 exactly",
    "ORTHOGONAL": "mutually orthogonal gradients of equal norm: α = 1/m = α^⊥",
    "CANCEL": "gradients summing to 0: α = 0 (ḡ = 0)",
    "ONE": "m = 1: α = α^⊥ = 1",
    "SOME_ZERO": "zero rows among nonzero ones: they lower α (they count in both means)",
    "LARGE": "entries of size 1e150: their squares (1e300) stay finite in the float64 sums",
}


def _random(rng, m, P):  # noqa: N803
    shared = rng.standard_normal(P)
    weight = float(rng.choice([0.0, 0.5, 2.0]))
    g = weight * shared + rng.standard_normal((m, P)) * float(rng.choice([0.1, 1.0, 10.0]))
    return Sample("random", (g,))


def _edges():
    rng = np.random.default_rng(32)
    row = rng.standard_normal(7)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    cancel = rng.standard_normal((4, 5))
    cancel[-1] = -cancel[:-1].sum(axis=0)
    with_zeros = rng.standard_normal((5, 3))
    with_zeros[[1, 3]] = 0.0
    return [
        Sample("identical gradients", (np.tile(row, (4, 1)),), flags=("IDENTICAL",)),
        Sample("orthonormal gradients", (3.0 * q[:4],), flags=("ORTHOGONAL",)),
        Sample("gradients that cancel", (cancel,), flags=("CANCEL",)),
        Sample("one example", (row[None, :],), flags=("ONE",)),
        Sample("zero rows", (with_zeros,), flags=("SOME_ZERO",)),
        Sample("scale 1e150", (1e150 * rng.standard_normal((3, 4)),), flags=("LARGE",), dtypes=("float64",)),
    ]


def _errors():
    return [ErrorCase("all gradients zero", (np.zeros((3, 4)),), match="nonzero gradient")]


def _known():
    return [
        Known(
            "two gradients (1, 0), (1, 2)",
            (np.array([[1.0, 0.0], [1.0, 2.0]]),),
            values={"alpha": 2.0 / 3.0, "alpha_perp": 0.5},
            source="by hand: ḡ = (1, 1), ‖ḡ‖² = 2, mean ‖g_i‖² = (1 + 5)/2 = 3",
            rtol=1e-15,
        )
    ]


def _coherence_torch(torch, args, kwargs, cotangent):
    """The paper's α in PyTorch: ‖mean_i g_i‖² / mean_i ‖g_i‖² (float64 sums), and 1/m."""
    (g,) = (torch.from_numpy(a) for a in args)

    @torch.no_grad()
    def step():
        g64 = g.double()
        g_bar = g64.mean(dim=0)
        alpha = (g_bar @ g_bar) / (g64 * g64).sum(dim=1).mean()
        return alpha.to(g.dtype), torch.tensor(1.0 / g.shape[0], dtype=g.dtype)

    return step


register(
    OpCases(
        "gradient_coherence",
        dims={"m": (1, 6), "P": (1, 9)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        known=_known,
        defaults={},
        bench=Bench(
            sizes={"m": "rows", "P": "cols"},
            torch=_coherence_torch,
            torch_label="‖ḡ‖²/mean ‖g_i‖² with torch reductions in float64 (no gradient: a statistic)",
        ),
    )
)
