"""Conformance cases for robust weight signatures: `robust_weight_signature` and `rws_patch`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register
from .wise_ft import shape_with

NOTES = {
    "ORTHOGONAL": "Δ ⊥ a already: the signature is Δ itself",
    "PARALLEL": "Δ ∥ a: the signature is 0 up to rounding (cancellation)",
    "CLEAN_UNCHANGED": "a = θ_clean − θ_pre = 0: no direction to remove, RWS = Δ (official: 0/0 = NaN)",
    "ROBUST_UNCHANGED": "Δ = 0: the signature is 0",
    "SCALAR_PARAMETER": "a 0-d parameter tensor (n = 1: RWS = 0 unless a = 0)",
    "HUGE": "values 1e200: ‖a‖² overflows float64 unless scaled first",
    "TINY": "values 1e-200: ‖a‖² underflows to 0 unless scaled first",
    "OFFSET": "weights 1e4 + O(1e-3): the differences of nearly equal numbers",
    "SQUARED_ALPHA": "official_squared_alpha: the applied coefficient is α², the gradient 2α⟨θ̄, RWS⟩",
    "ONE_SIGNATURE": "C = 1",
    "ZERO_ALPHA": "α = 0: θ_clean exactly, gradient still ⟨θ̄, RWS⟩",
}


# -- robust_weight_signature ------------------------------------------------------------------
def _models(rng, shape):
    """θ_pre and two fine-tuned models around it, the robust one partly along the clean direction."""
    pre = rng.standard_normal(shape) * float(rng.choice([0.1, 1.0]))
    clean_move = 0.1 * rng.standard_normal(shape)
    robust_move = float(rng.uniform(-1, 1)) * clean_move + 0.1 * rng.standard_normal(shape)
    return np.asarray(pre + robust_move), np.asarray(pre + clean_move), np.asarray(pre)


def _signature_random(rng, n):
    return Sample("random", _models(rng, shape_with(rng, n)))


def _signature_edges():
    rng = np.random.default_rng(78)
    pre = rng.standard_normal((3, 4))
    clean_move = rng.standard_normal((3, 4))
    other = rng.standard_normal((3, 4))
    orthogonal = other - (other * clean_move).sum() / (clean_move * clean_move).sum() * clean_move
    return [
        Sample("Δ ⊥ a", (pre + orthogonal, pre + clean_move, pre), flags=("ORTHOGONAL",)),
        Sample("Δ = −2a", (pre - 2 * clean_move, pre + clean_move, pre), flags=("PARALLEL",)),
        Sample("θ_clean = θ_pre", (pre + other, pre, pre), flags=("CLEAN_UNCHANGED",)),
        Sample("θ_c = θ_pre", (pre, pre + clean_move, pre), flags=("ROBUST_UNCHANGED",)),
        Sample("0-d", (np.array(1.5), np.array(0.5), np.array(0.0)), flags=("SCALAR_PARAMETER",)),
        Sample(
            "magnitudes 1e200",
            (1e200 * other, 1e200 * clean_move, np.zeros((3, 4))),
            flags=("HUGE",),
            dtypes=("float64",),
        ),
        Sample(
            "magnitudes 1e-200",
            (1e-200 * other, 1e-200 * clean_move, np.zeros((3, 4))),
            flags=("TINY",),
            dtypes=("float64",),
        ),
        Sample(
            "offset 1e4",
            (1e4 + 1e-3 * other, 1e4 + 1e-3 * clean_move, np.full((3, 4), 1e4)),
            flags=("OFFSET",),
        ),
    ]


def _signature_known():
    return [
        Known(
            "hand value: Δ = (3, 4), a = (2, 0): RWS = (0, 4)",
            (np.array([3.0, 4.0]), np.array([2.0, 0.0]), np.zeros(2)),
            {},
            {"signature": [0.0, 4.0]},
            source="by hand: ⟨Δ, a⟩/‖a‖² = 6/4, RWS = (3, 4) − 1.5·(2, 0)",
        ),
        Known(
            "hand value: Δ = (1, 1, 0), a = (1, 1, 1) from θ_pre = 1",
            (np.array([2.0, 2.0, 1.0]), np.array([2.0, 2.0, 2.0]), np.ones(3)),
            {},
            {"signature": [1 / 3, 1 / 3, -2 / 3]},
            source="by hand: ⟨Δ, a⟩/‖a‖² = 2/3",
        ),
    ]


def _signature_torch(torch, args, kwargs, cotangent):
    """The official get_projection in its cosine form (no n×n matrix): float64 tensors."""
    robust, clean, pre = (torch.from_numpy(a.astype(np.float64)).reshape(-1) for a in args)
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[args[0].dtype]

    def step():
        with torch.no_grad():
            delta, a = robust - pre, clean - pre
            return (delta - (delta @ a) / (a @ a) * a).to(dtype).reshape(args[0].shape)

    return step


register(
    OpCases(
        "robust_weight_signature",
        dims={"n": (1, 12)},
        random=_signature_random,
        edges=_signature_edges,
        errors=lambda: [],
        known=_signature_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"n": 2**22},
            torch=_signature_torch,
            torch_label="Δ − (⟨Δ, a⟩/‖a‖²)·a with float64 torch tensors, no_grad",
        ),
    )
)


# -- rws_patch --------------------------------------------------------------------------------
def _patch_random(rng, n, C):  # noqa: N803
    shape = shape_with(rng, n)
    clean = np.asarray(rng.standard_normal(shape))
    signatures = 0.1 * rng.standard_normal(shape + (C,))
    alpha = rng.uniform(0.0, 1.0, size=C) if rng.integers(0, 2) else np.full(C, 1.0 / C)
    return Sample("random", (clean, signatures, alpha), {"official_squared_alpha": bool(rng.integers(0, 2))})


def _patch_edges():
    rng = np.random.default_rng(2302)
    clean = rng.standard_normal((3, 4))
    signatures = rng.standard_normal((3, 4, 3))
    return [
        Sample("C = 1, α = 1", (clean, signatures[..., :1], np.array([1.0])), flags=("ONE_SIGNATURE",)),
        Sample("α = 0", (clean, signatures, np.zeros(3)), flags=("ZERO_ALPHA",)),
        Sample(
            "official squared α = 1/C",
            (clean, signatures, np.full(3, 1 / 3)),
            {"official_squared_alpha": True},
            flags=("SQUARED_ALPHA",),
        ),
        Sample("0-d", (np.array(1.0), np.array([0.5, -0.25]), np.array([0.5, 2.0]))),
        Sample("offset 1e4", (1e4 + clean, 1e-3 * signatures, np.full(3, 0.5)), flags=("OFFSET",)),
    ]


def _patch_known():
    signatures = np.stack([np.array([1.0, 0.0]), np.array([0.0, 2.0])], axis=-1)
    return [
        Known(
            "hand value: θ_clean + 0.5·(1, 0) + 0.5·(0, 2)",
            (np.array([1.0, 1.0]), signatures, np.array([0.5, 0.5])),
            {},
            {"theta": [1.5, 2.0], "cotangent of 'alpha'": [1.0, 2.0]},
            source="by hand: ᾱ_c = ⟨1, RWS_c⟩",
        ),
        Known(
            "hand value, official squared α",
            (np.array([1.0, 1.0]), signatures, np.array([0.5, 0.5])),
            {"official_squared_alpha": True},
            {"theta": [1.25, 1.5], "cotangent of 'alpha'": [1.0, 2.0]},
            source="by hand: α² = 0.25; ᾱ_c = 2·0.5·⟨1, RWS_c⟩",
        ),
    ]


def _patch_torch(torch, args, kwargs, cotangent):
    """θ_clean + Σ_c β_c RWS_c as a tensordot in float64, autograd for α."""
    clean, signatures = (torch.from_numpy(a.astype(np.float64)) for a in args[:2])
    alpha = torch.from_numpy(args[2]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    squared = kwargs.get("official_squared_alpha", False)

    def step():
        alpha.grad = None
        beta = (alpha * alpha if squared else alpha).to(torch.float64)
        theta = (clean + signatures @ beta).to(alpha.dtype)
        theta.backward(g)
        return theta

    return step


register(
    OpCases(
        "rws_patch",
        dims={"n": (1, 12), "C": (1, 4)},
        random=_patch_random,
        edges=_patch_edges,
        errors=lambda: [],
        known=_patch_known,
        notes=NOTES,
        defaults={"official_squared_alpha": False},
        bench=Bench(
            sizes={"n": 2**21, "C": 4},
            torch=_patch_torch,
            torch_label="θ_clean + signatures @ α in float64; autograd",
        ),
    )
)
