"""Conformance cases for BiDO: the Gaussian kernel matrix, HSIC, normalized HSIC, COCO and the BiDO loss."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register


def _points(rng, m, d):
    return rng.standard_normal((m, d)) * float(rng.choice([0.3, 1.0, 2.0]))


def _separated_points(rng, m, d, closest=0.1):
    """Random points no two closer than ``closest``: two nearly coincident points make the
    Gaussian kernel nearly constant, where the centered products vanish, sqrt (COCO) is
    singular and float32 keeps no digit of the Gram-form distance (DUPLICATES is that case)."""
    for _ in range(50):
        Z = _points(rng, m, d)
        gaps = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=-1)) + np.eye(m) * closest
        if gaps.min() >= closest:
            break
    return Z


def _gaussian_gram(Z, v):
    D = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=-1)
    return np.exp(-D / v)


def _kernel(rng, m):
    """A realistic kernel matrix: a Gaussian kernel of random points, or a linear (PSD) one."""
    Z = _points(rng, m, int(rng.integers(1, 4)))
    return _gaussian_gram(Z, 2.0) if rng.integers(2) else Z @ Z.T + 0.1 * np.eye(m)


# -- gaussian_kernel_matrix ---------------------------------------------------------------------
KERNEL_NOTES = {
    "DUPLICATES": "coincident points: the Gram-form distance rounds to ±tiny; clamp (or |·|) keeps K ≤ 1 "
    "and the Laplacian-form VJP is exactly 0 between them",
    "LARGE_NORMS": "points of norm ~1e2 close together: r_i − 2⟨z_i, z_j⟩ + r_j cancels (float32: round-off)",
    "OFFICIAL": "official bandwidth 2σ²·d and |D| (bandwidth_scales_with_dim, abs_distances)",
    "ONE_POINT": "m = 1: K = [[1]], zero gradient",
}


def _kernel_random(rng, m, d):
    kwargs = {
        "sigma": float(rng.choice([0.5, 1.0, 5.0])),
        "bandwidth_scales_with_dim": bool(rng.integers(2)),
        "abs_distances": bool(rng.integers(2)),
    }
    return Sample("random", (_points(rng, m, d),), kwargs)


def _kernel_edges():
    rng = np.random.default_rng(31)
    Z = rng.standard_normal((4, 3))
    duplicated = np.vstack([Z[:2], Z[:1], Z[2:3]])
    far = 100.0 + 0.1 * rng.standard_normal((3, 2))
    return [
        Sample("paper example", (np.array([[0.0, 0.0], [1.0, 1.0]]),), {"sigma": 1.0}, comment="K_01 = e^-1"),
        Sample("duplicated point", (duplicated,), {"sigma": 1.0}, flags=("DUPLICATES",)),
        Sample(
            "duplicated point, |D|",
            (duplicated,),
            {"sigma": 1.0, "abs_distances": True},
            flags=("DUPLICATES", "OFFICIAL"),
        ),
        Sample(
            "official bandwidth, σ = 5",
            (rng.standard_normal((5, 6)) * 3,),
            {"bandwidth_scales_with_dim": True, "abs_distances": True},
            flags=("OFFICIAL",),
        ),
        Sample(
            "large norms, close points",
            (far,),
            {"sigma": 0.1},
            flags=("LARGE_NORMS",),
            dtypes=("float64",),
            comment="‖z‖² ~ 2e4 against distances ~0.02: float32 Gram-form distances are all round-off",
        ),
        Sample("one point", (np.array([[0.3, -1.2]]),), flags=("ONE_POINT",)),
    ]


def _kernel_torch(torch, args, kwargs, cotangent):
    """exp(−D/v) of the Gram-form distances of the centred points, autograd backward."""
    Z = torch.from_numpy(args[0]).requires_grad_()
    sigma = kwargs.get("sigma", 5.0)
    v = 2.0 * sigma * sigma * (Z.shape[1] if kwargs.get("bandwidth_scales_with_dim", False) else 1)
    absolute = kwargs.get("abs_distances", False)
    diagonal = torch.eye(Z.shape[0], dtype=torch.bool)
    g = torch.from_numpy(cotangent)

    def step():
        Z.grad = None
        centred = Z - Z.mean(dim=0)
        r = (centred * centred).sum(dim=1)
        D = r[:, None] - 2 * (centred @ centred.T) + r[None, :]
        D = D.abs() if absolute else D.clamp(min=0)
        K = torch.exp(-D.masked_fill(diagonal, 0.0) / v)
        K.backward(g)
        return K

    return step


def _kernel_blas(args, kwargs):
    """The Gram matrix Z Zᵀ (forward) and the Laplacian product P Z (backward)."""
    Z = args[0]
    P = np.ones((Z.shape[0], Z.shape[0]), dtype=Z.dtype)

    def step():
        return Z @ Z.T, P @ Z

    return step


register(
    OpCases(
        "gaussian_kernel_matrix",
        dims={"m": (1, 6), "d": (1, 4)},
        random=_kernel_random,
        edges=_kernel_edges,
        notes=KERNEL_NOTES,
        bench=Bench(
            sizes={"m": 2048, "d": 64},
            torch=_kernel_torch,
            torch_label="centred Gram-form distances (clamp or abs, zero diagonal), torch.exp; "
            "autograd backward",
            # one exp per distinct off-diagonal K_ij = K_ji (K_ii = 1); the backward reuses K
            transcendentals=lambda args, kwargs: args[0].shape[0] * (args[0].shape[0] - 1) // 2,
            blas=_kernel_blas,
        ),
    )
)


# -- hsic -----------------------------------------------------------------------------------------
HSIC_NOTES = {
    "CONSTANT": "a constant kernel has no variation: HSIC = 0 (centring must be exact)",
    "TWO_SAMPLES": "m = 2, the smallest batch the (m − 1)² normalization allows",
    "NONSYMMETRIC": "non-symmetric matrices: the VJP must use Lᵀ, not L",
}


def _hsic_random(rng, m):
    return Sample("random", (_kernel(rng, m), _kernel(rng, m)))


def _hsic_edges():
    rng = np.random.default_rng(32)
    K = _kernel(rng, 5)
    return [
        Sample("identity kernels, m = 2", (np.eye(2), np.eye(2)), flags=("TWO_SAMPLES",), comment="HSIC = 1"),
        Sample("constant kernel", (np.ones((4, 4)), _kernel(rng, 4)), flags=("CONSTANT",)),
        Sample("identical kernels", (K, K.copy())),
        Sample(
            "non-symmetric matrices",
            (rng.standard_normal((4, 4)), rng.standard_normal((4, 4))),
            flags=("NONSYMMETRIC",),
        ),
    ]


def _hsic_errors():
    return [
        ErrorCase("one sample", (np.ones((1, 1)), np.ones((1, 1))), match=r"'K'.*m = 2"),
    ]


def _hsic_torch(torch, args, kwargs, cotangent):
    """tr(K H L H)/(m − 1)² as Σ_ij (HKH)_ij L_ji, the centring by means (H never formed)."""
    K, L = (torch.from_numpy(a).requires_grad_() for a in args)
    scale = (K.shape[0] - 1) ** 2
    g = torch.from_numpy(cotangent)

    def step():
        K.grad = L.grad = None
        centred = K - K.mean(dim=1, keepdim=True) - K.mean(dim=0, keepdim=True) + K.mean()
        value = (centred * L.T).sum() / scale
        value.backward(g)
        return value

    return step


register(
    OpCases(
        "hsic",
        dims={"m": (2, 6)},
        random=_hsic_random,
        edges=_hsic_edges,
        errors=_hsic_errors,
        notes=HSIC_NOTES,
        bench=Bench(
            sizes={"m": 2048},
            torch=_hsic_torch,
            torch_label="Σ (HKH) ⊙ Lᵀ / (m − 1)², HKH by row/column/grand means; autograd backward",
        ),
    )
)


# -- normalized_hsic ------------------------------------------------------------------------------
NORMALIZED_NOTES = {
    "OFFICIAL_EPSILON": "ε = 1e-5: A + εmI has condition ~1e5 (A = KH is singular); solves, not inverses, "
    "and float64 inside; central differences need a wider step",
    "ONE_SAMPLE": "m = 1: KH = 0, nHSIC = 0",
    "RIGHT_CENTRING": "one-sided centring K H (official), not H K H",
}


def _normalized_random(rng, m):
    kwargs = {"epsilon": float(rng.choice([1e-2, 0.1, 1.0]))}
    # fd_rtol 2e-3: at the official ε = 1e-5 (the samples at defaults) K H + εmI has a
    # condition number ~1e5, and central differences kept only 3.5 digits (2.7e-4) on 40 seeds
    return Sample("random", (_kernel(rng, m), _kernel(rng, m)), kwargs, fd_rtol=2e-3)


def _normalized_edges():
    rng = np.random.default_rng(33)
    K, L = _kernel(rng, 5), _kernel(rng, 5)
    return [
        Sample(
            "official ε = 1e-5",
            (K, L),
            flags=("OFFICIAL_EPSILON",),
            fd_step=1e-5,
            fd_rtol=1e-4,
            comment="the forward carries ~1e-11 of solve noise; a 1e-6 step would amplify it",
        ),
        Sample("identity kernels", (np.eye(3), np.eye(3)), comment="2/(1 + 3e-5)²"),
        Sample(
            "non-symmetric matrices",
            (rng.standard_normal((4, 4)), rng.standard_normal((4, 4))),
            {"epsilon": 0.5},
            flags=("RIGHT_CENTRING",),
        ),
        Sample("one sample", (np.array([[1.3]]), np.array([[0.4]])), flags=("ONE_SAMPLE",)),
    ]


register(
    OpCases(
        "normalized_hsic",
        dims={"m": (1, 6)},
        random=_normalized_random,
        edges=_normalized_edges,
        notes=NORMALIZED_NOTES,
    )
)


# -- coco -----------------------------------------------------------------------------------------
COCO_NOTES = {
    "ZERO": "a constant kernel: K̃ = 0, COCO = 0, sqrt has infinite slope; the VJP is defined as 0",
    "FROBENIUS": "official norm='fro' (torch.norm of the product), a different value than the spectral norm",
    "ONE_SAMPLE": "m = 1: H = 0, COCO = 0",
}


def _coco_random(rng, m):
    # away from P = K̃L̃ = 0 (two nearly coincident points make K nearly constant), where
    # sqrt(‖P‖) has unbounded curvature and central differences lose their digits; that
    # point is the ZERO edge case
    h = np.eye(m) - 1.0 / m
    for _ in range(20):
        K, L = _kernel(rng, m), _kernel(rng, m)
        if m == 1 or np.linalg.norm(h @ K @ h @ L @ h) > 1e-2:
            break
    return Sample("random", (K, L), {"norm": str(rng.choice(["spectral", "fro"]))})


def _coco_edges():
    rng = np.random.default_rng(34)
    K, L = _kernel(rng, 5), _kernel(rng, 5)
    return [
        Sample("hand example", (np.array([[2.0, 0.0], [0.0, 0.0]]),) * 2, comment="COCO = 1/2"),
        Sample("official Frobenius norm", (K, L), {"norm": "fro"}, flags=("FROBENIUS",)),
        Sample(
            "constant kernel",
            (np.ones((4, 4)), _kernel(rng, 4)),
            flags=("ZERO",),
            fd=False,
            comment="sqrt(‖P‖) is not differentiable at P = 0",
        ),
        Sample(
            "constant kernel, Frobenius",
            (np.ones((3, 3)), np.eye(3)),
            {"norm": "fro"},
            flags=("ZERO",),
            fd=False,
        ),
        Sample("one sample", (np.array([[1.3]]), np.array([[0.4]])), flags=("ONE_SAMPLE",), fd=False),
    ]


register(
    OpCases(
        "coco",
        dims={"m": (1, 6)},
        random=_coco_random,
        edges=_coco_edges,
        notes=COCO_NOTES,
    )
)


# -- bido_loss ------------------------------------------------------------------------------------
BIDO_NOTES = {
    "OFFICIAL": "official settings: normalized HSIC (ε = 1e-5) or Frobenius COCO, bandwidth 2σ²·d, |D|",
    "ONE_CLASS": "every label equal: K_Y is constant, D_zy = 0 (COCO's zero-gradient convention)",
    "DISTINCT_CLASSES": "all labels different: K_Y = I",
}


def _bido_random(rng, B, Dx, F, C):
    measure = str(rng.choice(["hsic", "coco"]))
    kwargs = {
        "lambda_x": float(rng.choice([0.0, 0.05, 1.0])),
        "lambda_y": float(rng.choice([0.0, 0.5, 2.0])),
        "measure": measure,
        "estimator": str(rng.choice(["biased", "normalized"])),
        "norm": str(rng.choice(["spectral", "fro"])),
        "sigma": float(rng.choice([1.0, 5.0])),
        "bandwidth_scales_with_dim": bool(rng.integers(2)),
        "abs_distances": bool(rng.integers(2)),
        "epsilon": 0.01,  # a well-conditioned ridge for tight central differences
    }
    args = (_separated_points(rng, B, Dx), _separated_points(rng, B, F), rng.integers(0, C, size=B))
    return Sample("random", args, kwargs)


def _bido_edges():
    rng = np.random.default_rng(35)
    x, z = rng.standard_normal((6, 5)), rng.standard_normal((6, 3))
    y = np.array([0, 1, 0, 2, 1, 0])
    official = {"sigma": 5.0, "bandwidth_scales_with_dim": True, "abs_distances": True}
    return [
        Sample(
            "hand example",
            (
                np.array([[0.0], [1.0], [2.0], [3.0]]),
                np.array([[0.0], [0.0], [1.0], [1.0]]),
                np.array([0, 0, 1, 1]),
            ),
            {"lambda_x": 0.0, "lambda_y": 1.0, "sigma": 1.0},
            comment="D_zy = 8(1 − e^(−1/2))/18",
        ),
        Sample("paper: biased HSIC", (x, z, y), {"lambda_x": 0.05, "lambda_y": 0.5, "sigma": 1.0}),
        Sample(
            "official HSIC (normalized)",
            (x, z, y),
            {"lambda_x": 0.05, "lambda_y": 0.5, "estimator": "normalized", **official},
            flags=("OFFICIAL",),
            fd_step=1e-5,
            fd_rtol=1e-4,
            comment="ε = 1e-5: see normalized_hsic's OFFICIAL_EPSILON",
        ),
        Sample(
            "official COCO (Frobenius)",
            (x, z, y),
            {"lambda_x": 0.05, "lambda_y": 0.5, "measure": "coco", "norm": "fro", **official},
            flags=("OFFICIAL",),
        ),
        Sample(
            "paper COCO (spectral)",
            (x, z, y),
            {"lambda_x": 0.3, "lambda_y": 0.7, "measure": "coco", "sigma": 1.5},
        ),
        Sample(
            "one class in the batch",
            (x, z, np.zeros(6, dtype=np.int64)),
            {"lambda_x": 0.1, "lambda_y": 1.0, "measure": "coco", "sigma": 1.0},
            flags=("ONE_CLASS",),
        ),
        Sample(
            "all labels distinct",
            (x[:4], z[:4], np.arange(4)),
            {"lambda_x": 0.1, "lambda_y": 1.0, "sigma": 1.0},
            flags=("DISTINCT_CLASSES",),
        ),
    ]


def _bido_errors():
    x, z, y = np.zeros((3, 2)), np.zeros((3, 4)), np.array([0, 1, 0])
    lambdas = {"lambda_x": 0.1, "lambda_y": 0.5}
    return [
        ErrorCase("one sample", (x[:1], z[:1], y[:1]), lambdas, match=r"'x'.*m = 2"),
    ]


register(
    OpCases(
        "bido_loss",
        dims={"B": (2, 6), "Dx": (1, 4), "F": (1, 4), "C": (1, 3)},
        random=_bido_random,
        edges=_bido_edges,
        errors=_bido_errors,
        notes=BIDO_NOTES,
    )
)
