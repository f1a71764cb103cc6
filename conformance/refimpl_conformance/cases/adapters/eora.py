"""Conformance cases for `eora_compensation`.

The factors hold singular vectors (sign and rotation ambiguity), so ``compare_as`` compares
``B A`` and ``W_eff = W_c + B A`` only.
"""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "DEAD_FEATURE": "an exactly zero eigenvalue of C (an input never excited): the official Λ^{-½} is "
    "inf and its A NaN; the reference's Σ^{-½} Uᵀ ΔW stays finite",
    "PLAIN_SVD": "C = I: the truncated SVD of ΔW",
    "NEGATIVE_EIGENVALUE": "an indefinite C: its negative eigenvalue becomes 0 (or, officially, the smallest "
    "positive one)",
    "RANK_DEFICIENT_C": "fewer calibration rows than features: rounding-level (±) eigenvalues",
    "FULL_RECOVERY": "r = rank ΔW with a full-rank C: W_eff = W",
    "EMPTY_COMPONENT": "r above the rank of ΔW Q': σ = 0 components, their factors 0",
    "NO_ERROR": "W_c = W: ΔW = 0, A = B = 0 and W_eff = W_c",
    "SCALED_C": "C × 1e8: B A does not depend on the scale of C",
}


def _compressed(rng, W):
    """A 2-bit-grid rounding (quantization) or a 50% magnitude pruning of W."""
    if rng.random() < 0.5:
        return np.round(W * 2.0) / 2.0
    threshold = np.median(np.abs(W))
    return np.where(np.abs(W) > threshold, W, 0.0)


def _covariance_of(rng, rows, I):  # noqa: N803
    X = rng.standard_normal((rows, I)) * rng.uniform(0.3, 2.0, size=I)
    return X.T @ X / rows


def compare_as(outputs, arguments):
    """The sign- and rotation-invariant quantities: B A and W_eff."""
    A, B, W_eff = outputs
    return {"B A": B @ A, "W_eff": W_eff}


def _random(rng, O, I):  # noqa: N803
    W = rng.standard_normal((O, I))
    W_c = _compressed(rng, W)
    C = _covariance_of(rng, int(rng.integers(I, 3 * I + 1)), I)
    r = int(rng.integers(1, min(O, I) + 1))
    kwargs = {"negative_eigenvalues": "smallest_positive"} if rng.random() < 0.3 else {}
    return Sample("random", (W, W_c, C, r), kwargs)


def _edges():
    rng = np.random.default_rng(29)
    W = rng.standard_normal((5, 4))
    W_c = np.round(W * 2.0) / 2.0
    full_C = _covariance_of(rng, 10, 4)
    dead_C = full_C.copy()
    dead_C[2, :] = 0.0
    dead_C[:, 2] = 0.0  # feature 2 never excited: an exact zero eigenvalue
    indefinite_C = np.diag([2.0, 1.0, -0.5, 3.0])
    low_rank_delta = np.outer(rng.standard_normal(5), rng.standard_normal(4))
    low_rank_delta += np.outer(rng.standard_normal(5), rng.standard_normal(4))
    return [
        Sample(
            "feature 2 never excited (zero row and column of C), r = 2",
            (W, W_c, dead_C, 2),
            flags=("DEAD_FEATURE",),
        ),
        Sample("C = I, r = 2", (W, W_c, np.eye(4), 2), flags=("PLAIN_SVD",)),
        Sample(
            "indefinite C (eigenvalue −0.5), r = 2", (W, W_c, indefinite_C, 2), flags=("NEGATIVE_EIGENVALUE",)
        ),
        Sample(
            "indefinite C, the official smallest-positive rule, r = 2",
            (W, W_c, indefinite_C, 2),
            {"negative_eigenvalues": "smallest_positive"},
            flags=("NEGATIVE_EIGENVALUE",),
        ),
        Sample(
            "C from 2 rows of 4 features, r = 1",
            (W, W_c, _covariance_of(rng, 2, 4), 1),
            flags=("RANK_DEFICIENT_C",),
        ),
        Sample(
            "rank-2 ΔW, r = 2, full-rank C",
            (W, W - low_rank_delta, full_C, 2),
            flags=("FULL_RECOVERY",),
            comment="W_eff = W up to rounding",
        ),
        Sample(
            "rank-2 ΔW, r = 3",
            (W, W - low_rank_delta, full_C, 3),
            flags=("EMPTY_COMPONENT",),
        ),
        Sample("W_c = W, r = 2", (W, W.copy(), full_C, 2), flags=("NO_ERROR", "EMPTY_COMPONENT")),
        Sample("C × 1e8, r = 3", (W, W_c, 1e8 * full_C, 3), flags=("SCALED_C",)),
        Sample("single output row, r = 1", (W[:1], W_c[:1], full_C, 1)),
    ]


def _errors():
    W = np.ones((3, 5))
    return [
        ErrorCase("r > min(out, in)", (W, W, np.eye(5), 4), match=r"'r'.*min\(out, in\) = 3"),
        ErrorCase("C = 0", (W, W, np.zeros((5, 5)), 2), match=r"'C'.*positive trace"),
    ]


def _torch(torch, args, kwargs, cotangent):
    """EoRA's official pipeline in torch: float64 eigh, the clamp, the whitened SVD and the factors."""
    W, W_c, C = (torch.from_numpy(a) for a in args[:3])
    r = int(args[3])

    def step():
        with torch.no_grad():
            return compensate()

    def compensate():
        delta = W - W_c
        L, Q = torch.linalg.eigh(C.double())
        if (L < 0).any():
            official = kwargs.get("negative_eigenvalues", "zero") == "smallest_positive"
            L = torch.where(L < 0, L[L > 0].min() if official else 0.0, L)
        Q_prime = (Q * torch.sqrt(L)).to(W.dtype)
        U, S, _ = torch.linalg.svd(delta @ Q_prime, full_matrices=False)
        U_r = U[:, :r]
        # the reference's sign rule: the largest |entry| of each kept column of U positive
        U_r = U_r * torch.sign(U_r.gather(0, U_r.abs().argmax(dim=0, keepdim=True)))
        root = torch.sqrt(S[:r])
        inverse_root = torch.where(root > 0, 1 / root, 0.0)  # an empty component: A's row 0
        B = U_r * root
        A = (inverse_root[:, None] * U_r.T) @ delta
        return A, B, W_c + B @ A

    return step


register(
    OpCases(
        "eora_compensation",
        dims={"O": (1, 7), "I": (1, 7)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        compare_as=compare_as,
        bench=Bench(
            sizes={"O": 256, "I": 256},
            torch=_torch,
            torch_label="torch.linalg.eigh (float64) and torch.linalg.svd, the same steps",
        ),
        defaults={"negative_eigenvalues": "zero"},
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("eora-zero-eigenvalue-nan", outputs=("A", "B", "W_eff"))
def _official_eora(W, W_c, C, r, *, negative_eigenvalues, dtype):
    """NVlabs/EoRA's llama_sequential_eigen: negative eigenvalues (only) replaced by the smallest
    positive one whatever ``negative_eigenvalues`` says, then A = √Σ Vᵀ Λ^{-½} Qᵀ."""
    compute = np.float32  # the official code casts Q' and Q'⁻¹ to float32 and decomposes in float32
    with np.errstate(divide="ignore", invalid="ignore"):
        L, Q = np.linalg.eigh(C.astype(np.float64))
        if (L < 0).any():
            L = np.where(L < 0, L[L > 0].min(), L)
        root_L = np.sqrt(L)
        Q_prime = (Q @ np.diag(root_L)).astype(compute)
        Q_prime_inverse = (np.diag(1 / root_L) @ Q.T).astype(compute)
        delta = (W - W_c).astype(compute)
        U, S, Vh = np.linalg.svd(delta @ Q_prime, full_matrices=False)
        root_S = np.diag(np.sqrt(S[:r]))
        B = U[:, :r] @ root_S
        A = root_S @ (Vh[:r] @ Q_prime_inverse)
        return {"A": A, "B": B, "W_eff": W_c + B @ A}
