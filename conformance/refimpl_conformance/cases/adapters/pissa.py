"""Conformance cases for `pissa_init`.

Singular vectors are defined only up to sign (and up to rotation inside a repeated
singular value), so the factors A and B are never compared: ``compare_as`` compares
``s·B A`` (the truncated SVD), ``W_res`` and their sum ``W_res + s·B A`` (= W). These are
unique whenever ``σ_r > σ_{r+1}``; every sample keeps a gap at the cut (or takes r = rank).
"""

from __future__ import annotations

import numpy as np

import refimpl

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "REPEATED_SINGULAR_VALUES": "a repeated singular value: the vectors are any rotation inside the "
    "block, so factor-by-factor comparison would fail; the products are still unique",
    "FULL_RANK": "r = min(out, in): s·B A = W and W_res = 0 up to rounding",
    "RANK_DEFICIENT": "rank W < min(out, in): zero singular values, arbitrary null-space vectors "
    "(their √0 factors must still give finite, zero contributions)",
    "ZERO_W": "W = 0: every singular value is 0, A = B = 0",
    "SIGN_CONVENTION": "a backend that fixes no sign, or another one, still passes (products only)",
}


def _orthonormal_columns(rng, rows, columns):
    q, _ = np.linalg.qr(rng.standard_normal((rows, columns)))
    return q


def _with_spectrum(rng, O, I, singular_values):  # noqa: N803 - dimension names as in the specs
    k = len(singular_values)
    return _orthonormal_columns(rng, O, k) * singular_values @ _orthonormal_columns(rng, I, k).T


def compare_as(outputs, arguments):
    """The sign- and rotation-invariant quantities: s·B A, W_res and W_res + s·B A."""
    A, B, W_res = outputs
    principal = arguments["scale"] * (B @ A)
    return {"s·B A": principal, "W_res": W_res, "W_res + s·B A": W_res + principal}


def _random(rng, O, I):  # noqa: N803
    k = min(O, I)
    r = int(rng.integers(1, k + 1))
    # a geometric spectrum (ratio <= 0.8) has a gap at every index: the best rank-r
    # approximation is unique and its float32 error stays ~ a few ulps of ‖W‖
    top, ratio = rng.uniform(0.5, 2.0), rng.uniform(0.3, 0.8)
    W = _with_spectrum(rng, O, I, top * ratio ** np.arange(k))
    lora_alpha = float(rng.choice([1.0, 8.0, 16.0]))
    return Sample("random", (W, r), {"scale": lora_alpha / r})


def _edges():
    rng = np.random.default_rng(5)
    return [
        Sample(
            "orthonormal rows × 2 (σ = 2, 2, 2), r = min(out, in) = 3",
            (2.0 * _orthonormal_columns(rng, 5, 3).T, 3),
            flags=("REPEATED_SINGULAR_VALUES", "FULL_RANK"),
            comment="every singular value equal: any orthonormal basis is an SVD",
        ),
        Sample(
            "repeated singular values on both sides of the cut (3, 3, 3, 1, 1), r = 3",
            (_with_spectrum(rng, 6, 5, np.array([3.0, 3.0, 3.0, 1.0, 1.0])), 3),
            {"scale": 0.5},
            flags=("REPEATED_SINGULAR_VALUES",),
        ),
        Sample(
            "orthonormal columns × 0.5, tall (6, 3), r = 3",
            (0.5 * _orthonormal_columns(rng, 6, 3), 3),
            {"scale": 2.0},
            flags=("REPEATED_SINGULAR_VALUES", "FULL_RANK"),
        ),
        Sample(
            "wide W (4, 7), r = min(out, in) = 4",
            (_with_spectrum(rng, 4, 7, np.array([1.5, 1.0, 0.6, 0.2])), 4),
            flags=("FULL_RANK",),
        ),
        Sample(
            "rank-deficient W (rank 2 of 5 × 4), r = 2 = rank",
            (_with_spectrum(rng, 5, 4, np.array([2.0, 0.7])), 2),
            flags=("RANK_DEFICIENT",),
            comment="W_res = 0 up to rounding",
        ),
        Sample(
            "rank-deficient W (rank 2 of 5 × 4), r = 3 > rank",
            (_with_spectrum(rng, 5, 4, np.array([2.0, 0.7])), 3),
            {"scale": 2.0},
            flags=("RANK_DEFICIENT",),
            comment="the third pair of singular vectors is arbitrary, its singular value 0",
        ),
        Sample("W = 0, r = 2", (np.zeros((3, 4)), 2), flags=("ZERO_W", "RANK_DEFICIENT")),
        Sample("single output row (1, 6), r = 1", (rng.standard_normal((1, 6)), 1), {"scale": 0.5}),
        Sample(
            "lora_alpha = 16, r = 8 (s = 2) on (10, 9)",
            (_with_spectrum(rng, 10, 9, 2.0 * 0.7 ** np.arange(9)), 8),
            {"scale": 2.0},
            flags=("SIGN_CONVENTION",),
        ),
    ]


def _errors():
    W = np.zeros((3, 5))
    return [
        ErrorCase("r > min(out, in)", (W, 4), match=r"'r'.*min\(out, in\) = 3"),
    ]


def _pissa_torch(torch, args, kwargs, cotangent):
    """torch.linalg.svd and PEFT's factor construction, with the reference's sign rule (the
    largest |entry| of each kept left vector positive, first on ties: torch.argmax's)."""
    W, r = torch.from_numpy(args[0]), int(args[1])
    scale = float(kwargs.get("scale", 1.0))

    def step():
        with torch.no_grad():
            V, S, Uh = torch.linalg.svd(W, full_matrices=False)
            V_r, S_r, Uh_r = V[:, :r], S[:r], Uh[:r]
            signs = torch.sign(V_r.gather(0, V_r.abs().argmax(dim=0, keepdim=True)))[0]
            root_S = torch.sqrt(S_r / scale)
            A = root_S[:, None] * (Uh_r * signs[:, None])
            B = (V_r * signs) * root_S
            return A, B, W - scale * (B @ A)

    return step


register(
    OpCases(
        "pissa_init",
        dims={"O": (1, 8), "I": (1, 8)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        compare_as=compare_as,
        bench=Bench(
            sizes={"O": 1024, "I": 1024},
            torch=_pissa_torch,
            torch_label="torch.linalg.svd, the sign rule, √(S/s) into A and B, W − s·B A (PEFT's steps)",
        ),
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("peft-pissa-float32-only", outputs=("A", "B", "W_res"))
def _peft_pissa_init(W, r, *, scale, dtype):
    """peft's ``pissa_init``: refuses float64 weights; the others' SVD runs in float32."""
    if dtype == "float64":
        raise TypeError("Please initialize PiSSA under float32, float16, or bfloat16.")
    return dict(
        zip(("A", "B", "W_res"), refimpl.get("pissa_init")(W.astype(np.float32), r, scale=scale), strict=True)
    )
