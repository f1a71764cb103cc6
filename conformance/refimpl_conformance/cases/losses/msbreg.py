"""Conformance cases for `multiview_centroid_loss` and `brownian_diffusive_loss` (MSBReg)."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "NEAR_CENTROID": "every view within 1e-4 of its centroid: 2 − 2⟨ẑ, ĉ⟩ cancels to a few ulp of 2, "
    "‖ẑ − ĉ‖² keeps its digits",
    "ANTIPODAL": "ẑ = −ĉ (or ẑ = ±û): the loss is at its maximum (minimum) and the gradient is 0",
    "HUGE_NORM": "entries ±1e200 (float64) or ±1e30 (float32): ‖z‖² overflows unless scaled",
    "TINY_NORM": "entries ±1e-160 (float64) or ±1e-30 (float32): ‖z‖² underflows to 0 unless scaled",
    "UNNORMALIZED": "c (or u) of arbitrary length: only its direction counts",
    "ONE_DIM": "D = 1: ẑ = ±1 whatever z, so the gradient is 0",
}


def _rows_away_from_zero(x, smallest=0.1):
    """Rows of norm < ``smallest`` scaled up to it: the curvature of z/‖z‖ grows like
    1/‖z‖² near 0, where central differences lose their digits."""
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    return np.where(norm < smallest, x * (smallest / np.maximum(norm, 1e-300)), x)


def _reduction(rng):
    return {"reduction": str(rng.choice(["mean", "sum", "none"]))}


# -- multiview_centroid_loss ---------------------------------------------------------------------
def _views_and_centroid(rng, V, B, D, spread):  # noqa: N803
    """V noisy views of B images and the centroid of V target views (normalized, then averaged)."""
    base = rng.standard_normal((B, D))
    z = _rows_away_from_zero(base + spread * rng.standard_normal((V, B, D)))
    target = base + spread * rng.standard_normal((V, B, D))
    target /= np.linalg.norm(target, axis=-1, keepdims=True)
    return z, _rows_away_from_zero(target.mean(axis=0))


def _centroid_random(rng, V, B, D):  # noqa: N803
    z, c = _views_and_centroid(rng, V, B, D, float(rng.choice([0.1, 0.5, 2.0])))
    z = z * float(rng.choice([0.01, 1.0, 50.0]))
    return Sample("random", (z, c), _reduction(rng))


def _centroid_edges():
    rng = np.random.default_rng(3)
    z, c = _views_and_centroid(rng, 3, 4, 5, 0.5)
    c_hat = c / np.linalg.norm(c, axis=-1, keepdims=True)
    near = c_hat[None] + 1e-4 * rng.standard_normal((2, 4, 5))
    return [
        Sample(
            "known value: views e₁ and e₂ of one image, centroid e₁",
            (np.array([[[3.0, 0.0]], [[0.0, 2.0]]]), np.array([[1.0, 0.0]])),
            comment="(0 + 2)/2 = 1",
        ),
        Sample(
            "views within 1e-4 of the centroid",
            (near, c),
            {"reduction": "none"},
            flags=("NEAR_CENTROID",),
            fd_step=1e-9,
            comment="the FD step is below the 1e-4 distance: ℓ ≈ 1e-8 is resolved",
        ),
        Sample("views opposite the centroid", (-3.0 * c_hat[None], c), flags=("ANTIPODAL",)),
        Sample(
            "entries ±1e200",
            (z * 1e200, c * 1e200),
            {"reduction": "sum"},
            flags=("HUGE_NORM",),
            dtypes=("float64",),
        ),
        Sample("entries ±1e30", (z * 1e30, c * 1e30), flags=("HUGE_NORM",), dtypes=("float32",)),
        Sample(
            "entries ±1e-160",
            (z * 1e-160, c * 1e-160),
            flags=("TINY_NORM",),
            dtypes=("float64",),
            fd_step=1e-166,
            comment="the FD step scales with the entries (the gradient is 1e160 times the unit-scale one)",
        ),
        Sample(
            "entries ±1e-30",
            (z * 1e-30, c * 1e-30),
            flags=("TINY_NORM",),
            dtypes=("float32",),
        ),
        Sample("centroid of length 40", (z, 40.0 * c_hat), {"reduction": "sum"}, flags=("UNNORMALIZED",)),
        Sample("one view", (z[:1], c), {"reduction": "none"}),
        Sample("D = 1", (np.array([[[2.0], [-0.5]]]), np.array([[1.0], [3.0]])), flags=("ONE_DIM",)),
    ]


def _centroid_errors():
    z = np.ones((2, 3, 4))
    c = np.ones((3, 4))
    zero_z = z.copy()
    zero_z[1, 2] = 0.0
    zero_c = c.copy()
    zero_c[1] = 0.0
    return [
        ErrorCase("a zero view", (zero_z, c), match=r"'z'.*nonzero norm.*\(1, 2\)"),
        ErrorCase("a zero centroid", (z, zero_c), match=r"'c'.*nonzero norm.*\(1,\)"),
    ]


def _centroid_known():
    s = 1 / math.sqrt(2)
    return [
        Known(
            "views e₁, (e₁ + e₂)/√2, −e₁ of one image, centroid e₁",
            (np.array([[[2.0, 0.0]], [[1.0, 1.0]], [[-5.0, 0.0]]]), np.array([[7.0, 0.0]])),
            {"reduction": "none"},
            values={
                "loss": [[0.0], [2.0 - 2.0 * s], [4.0]],
                # z̄ = −2(ĉ − ẑ⟨ẑ, ĉ⟩)/‖z‖: 0 at ẑ = ±ĉ; for ẑ = (1, 1)/√2, ‖z‖ = √2:
                # −2((1, 0) − (½, ½))/√2 = (−1/√2, 1/√2)
                "cotangent of 'z'": [[[0.0, 0.0]], [[-s, s]], [[0.0, 0.0]]],
            },
            source="by hand: ℓ = 2 − 2⟨ẑ, ĉ⟩ and the catalog's VJP −2ĉ projected by (I − ẑẑᵀ)/‖z‖",
            rtol=1e-12,
            atol=1e-15,
        ),
    ]


def _centroid_torch(torch, args, kwargs, cotangent):
    """z/‖z‖, c/‖c‖, ((ẑ − ĉ)²).sum(−1), mean; autograd backward."""
    z = torch.from_numpy(args[0]).requires_grad_()
    c = torch.from_numpy(args[1])
    g = torch.from_numpy(np.asarray(cotangent))
    reduction = kwargs.get("reduction", "mean")

    def step():
        z.grad = None
        z_hat = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)
        c_hat = c / torch.linalg.vector_norm(c, dim=-1, keepdim=True)
        per_entry = (z_hat - c_hat).square().sum(-1)
        loss = {"mean": per_entry.mean, "sum": per_entry.sum}.get(reduction, lambda: per_entry)()
        loss.backward(g)
        return loss

    return step


def _centroid_bench(rng, rows, cols):
    z, c = _views_and_centroid(rng, 2, rows, cols, 0.5)
    return Sample("bench", (z, c))


register(
    OpCases(
        "multiview_centroid_loss",
        dims={"V": (1, 4), "B": (1, 5), "D": (2, 7)},  # D = 1 (gradient 0) is an edge case
        random=_centroid_random,
        edges=_centroid_edges,
        errors=_centroid_errors,
        known=_centroid_known,
        notes=NOTES,
        defaults={"reduction": "mean"},
        bench=Bench(
            make=_centroid_bench,  # V = 2 views (the paper's multi-view setting), B rows of D cols
            torch=_centroid_torch,
            torch_label="z/‖z‖ and c/‖c‖ by vector_norm, ((ẑ − ĉ)²).sum(−1), mean; autograd backward",
        ),
    )
)


# -- brownian_diffusive_loss ---------------------------------------------------------------------
def _brownian_random(rng, V, B, D):  # noqa: N803
    z = _rows_away_from_zero(rng.standard_normal((V, B, D))) * float(rng.choice([0.01, 1.0, 50.0]))
    u = _rows_away_from_zero(rng.standard_normal(D)) * float(rng.choice([0.1, 1.0, 10.0]))
    return Sample("random", (z, u), _reduction(rng))


def _brownian_edges():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((2, 3, 4))
    u = rng.standard_normal(4)
    u_hat = u / np.linalg.norm(u)
    along = np.stack([2.0 * u_hat, -0.5 * u_hat, 7.0 * u_hat])[None]
    return [
        Sample(
            "known value: ẑ = e₁ and (e₁ + e₂)/√2 against û = e₂",
            (np.array([[[2.0, 0.0], [1.0, 1.0]]]), np.array([0.0, 5.0])),
            comment="(0 + 1/√2)/2",
        ),
        Sample("views along ±û", (along, u), {"reduction": "none"}, flags=("ANTIPODAL",)),
        Sample("entries ±1e200", (z * 1e200, u * 1e200), flags=("HUGE_NORM",), dtypes=("float64",)),
        Sample("entries ±1e30", (z * 1e30, u * 1e30), flags=("HUGE_NORM",), dtypes=("float32",)),
        Sample(
            "entries ±1e-160",
            (z * 1e-160, u * 1e-160),
            {"reduction": "sum"},
            flags=("TINY_NORM",),
            dtypes=("float64",),
            fd_step=1e-166,
            comment="the FD step scales with the entries (the gradient is 1e160 times the unit-scale one)",
        ),
        Sample("entries ±1e-30", (z * 1e-30, u * 1e-30), flags=("TINY_NORM",), dtypes=("float32",)),
        Sample("direction of length 1e3", (z, 1e3 * u_hat), {"reduction": "sum"}, flags=("UNNORMALIZED",)),
        Sample("D = 1", (np.array([[[2.0], [-0.5]]]), np.array([3.0])), flags=("ONE_DIM",)),
    ]


def _brownian_errors():
    z = np.ones((2, 3, 4))
    zero_z = z.copy()
    zero_z[0, 1] = 0.0
    return [
        ErrorCase("a zero view", (zero_z, np.ones(4)), match=r"'z'.*nonzero norm.*\(0, 1\)"),
        ErrorCase("a zero direction", (z, np.zeros(4)), match=r"'u'.*nonzero norm"),
    ]


def _brownian_known():
    s = 1 / math.sqrt(2)
    return [
        Known(
            "views e₁, (e₁ + e₂)/√2, e₂ against û = e₂",
            (np.array([[[3.0, 0.0], [1.0, 1.0], [0.0, 0.5]]]), np.array([0.0, 2.0])),
            {"reduction": "sum"},
            values={
                "loss": 0.0 + s + 1.0,
                # z̄ = (û − ẑ⟨ẑ, û⟩)/‖z‖: e₂/3; (e₂ − (½, ½))/√2 = (−1/(2√2), 1/(2√2)); 0
                "cotangent of 'z'": [[[0.0, 1 / 3], [-s / 2, s / 2], [0.0, 0.0]]],
            },
            source="by hand: ℓ = ⟨ẑ, û⟩ and the catalog's VJP û projected by (I − ẑẑᵀ)/‖z‖",
            rtol=1e-12,
            atol=1e-15,
        ),
    ]


def _brownian_torch(torch, args, kwargs, cotangent):
    """z/‖z‖ · u/‖u‖ (a cosine), mean; autograd backward."""
    z = torch.from_numpy(args[0]).requires_grad_()
    u = torch.from_numpy(args[1])
    g = torch.from_numpy(np.asarray(cotangent))
    reduction = kwargs.get("reduction", "mean")

    def step():
        z.grad = None
        z_hat = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)
        per_entry = z_hat @ (u / torch.linalg.vector_norm(u))
        loss = {"mean": per_entry.mean, "sum": per_entry.sum}.get(reduction, lambda: per_entry)()
        loss.backward(g)
        return loss

    return step


def _brownian_bench(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((2, rows, cols)), rng.standard_normal(cols)))


register(
    OpCases(
        "brownian_diffusive_loss",
        dims={"V": (1, 4), "B": (1, 5), "D": (2, 7)},  # D = 1 (gradient 0) is an edge case
        random=_brownian_random,
        edges=_brownian_edges,
        errors=_brownian_errors,
        known=_brownian_known,
        notes=NOTES,
        defaults={"reduction": "mean"},
        bench=Bench(
            make=_brownian_bench,  # V = 2 views, B rows of D cols, one direction
            torch=_brownian_torch,
            torch_label="(z/‖z‖)·(u/‖u‖) by vector_norm and matmul, mean; autograd backward",
        ),
    )
)
